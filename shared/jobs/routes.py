"""Ingestion jobs: the queue trigger that runs them, and HTTP to submit, read and retry."""

from __future__ import annotations

import json
import logging
import os
from functools import cache
from pathlib import Path

import azure.functions as func

from shared.http.requests import RequestError, handle_errors, read_json, read_query
from shared.http.responses import json_response
from shared.http.routing import http_route
from shared.jobs.shapes import JobList, JobOut, JobQuery, JobSubmitRequest
from shared.settings import binding_name

bp = func.Blueprint()
log = logging.getLogger(__name__)


@cache
def max_dequeue_count() -> int:
    """The attempt after which the host moves a message to the poison queue: host.json's
    queues.maxDequeueCount, or its app-setting override, as the host itself reads it."""
    override = os.environ.get(
        "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"  # noqa: SIM112 - Azure's name
    )
    try:
        if override:
            return int(override)
        host = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())
        return int(host.get("extensions", {}).get("queues", {}).get("maxDequeueCount", 5))
    except (OSError, ValueError):
        return 5


@bp.queue_trigger(
    arg_name="msg", queue_name=binding_name("INGESTION_QUEUE"), connection="AzureWebJobsStorage"
)
def run_ingestion_job(msg: func.QueueMessage) -> None:
    """Run one job. Raising hands the message back to the host for a retry."""
    from shared.jobs.service import job_runner

    outcome = job_runner().run(
        msg.get_body(),
        message_id=msg.id or "",
        dequeue_count=msg.dequeue_count or 1,
        max_dequeue_count=max_dequeue_count(),
    )
    log.info("job %s %s %s", outcome.job_id, outcome.status, outcome.detail)


def job_out(record) -> dict:
    return JobOut(
        id=record.id,
        kind=record.kind,
        status=record.status,
        attempts=record.attempts,
        payload=record.payload,
        result=record.result,
        error=record.error,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        updated_at=record.updated_at,
        url=f"/api/jobs/{record.id}",
    ).model_dump()


@http_route(
    bp,
    "jobs",
    ["POST"],
    summary="Submit a job (model, embeddings or embed_text); the same job_id runs once.",
    tags=("jobs",),
    request=JobSubmitRequest,
    response=JobOut,
    status=202,
    errors=(400, 409),
)
@handle_errors
def submit_job(req: func.HttpRequest) -> func.HttpResponse:
    from pydantic import ValidationError

    from shared.http.requests import validation_error
    from shared.jobs.service import job_submitter

    body = read_json(req, JobSubmitRequest)
    try:
        record, _ = job_submitter().submit(body.kind, body.payload, body.job_id)
    except ValidationError as exc:
        err = validation_error(exc)
        field = f"payload.{err.field}" if err.field else "payload"
        reason = err.message.removeprefix(f"{err.field}: ")
        raise RequestError(400, err.code, f"{field}: {reason}", field) from None
    return json_response(job_out(record), 202, headers={"Location": f"/api/jobs/{record.id}"})


@http_route(
    bp,
    "jobs",
    ["GET"],
    summary="Jobs, newest first, filtered by status and kind.",
    tags=("jobs",),
    query=JobQuery,
    response=JobList,
)
@handle_errors
def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    from shared.jobs.service import job_submitter

    q = read_query(req, JobQuery)
    records = job_submitter().jobs.list(status=q.status, kind=q.kind, limit=q.limit)
    return json_response({"jobs": [job_out(r) for r in records]})


@http_route(
    bp,
    "jobs/{job_id}",
    ["GET"],
    summary="One job's status, attempts, error, timings and result.",
    tags=("jobs",),
    response=JobOut,
    errors=(404,),
)
@handle_errors
def get_job(req: func.HttpRequest) -> func.HttpResponse:
    from shared.jobs.service import job_submitter

    record = job_submitter().jobs.get(req.route_params.get("job_id", ""))
    if record is None:
        raise RequestError(404, "not_found", "no job with this id", "job_id")
    return json_response(job_out(record))


@http_route(
    bp,
    "jobs/{job_id}/retry",
    ["POST"],
    summary="Requeue a failed job with its original payload.",
    tags=("jobs",),
    response=JobOut,
    status=202,
    errors=(404, 409),
)
@handle_errors
def retry_job(req: func.HttpRequest) -> func.HttpResponse:
    from shared.jobs.messages import KINDS
    from shared.jobs.service import job_submitter

    job_id = req.route_params.get("job_id", "")
    submitter = job_submitter()
    current = submitter.jobs.get(job_id)
    if current is None:
        raise RequestError(404, "not_found", "no job with this id", "job_id")
    if current.kind not in KINDS:
        raise RequestError(
            409, "not_retryable", "this job came from a malformed message; submit a corrected job"
        )
    record = submitter.retry(job_id)
    if record is None:
        raise RequestError(
            409, "not_failed", f"job is {current.status}; only failed jobs can be retried"
        )
    return json_response(job_out(record), 202)
