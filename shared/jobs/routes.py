"""Ingestion jobs: the queue trigger that runs them, and HTTP to submit, read and retry."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.http.requests import RequestError, handle_errors, read_json, read_query
from shared.http.responses import json_response
from shared.http.routing import http_route
from shared.jobs.shapes import JobList, JobOut, JobQuery, JobSubmitRequest
from shared.settings import binding_name

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.queue_trigger(
    arg_name="msg", queue_name=binding_name("INGESTION_QUEUE"), connection="AzureWebJobsStorage"
)
def run_ingestion_job(msg: func.QueueMessage) -> None:
    """Run one job. Raising hands the message back to the host for a retry."""
    from shared.jobs.service import job_runner

    outcome = job_runner().run(
        msg.get_body(), message_id=msg.id or "", dequeue_count=msg.dequeue_count or 1
    )
    log.info("job %s %s %s", outcome.job_id, outcome.status, outcome.detail)


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
    out = JobOut.of(record)
    return json_response(out.model_dump(), 202, headers={"Location": out.url})


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
    records = job_submitter().list(status=q.status, kind=q.kind, limit=q.limit)
    return json_response(JobList(jobs=[JobOut.of(r) for r in records]).model_dump())


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

    record = job_submitter().get(req.route_params.get("job_id", ""))
    return json_response(JobOut.of(record).model_dump())


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
    from shared.jobs.service import job_submitter

    record = job_submitter().retry(req.route_params.get("job_id", ""))
    return json_response(JobOut.of(record).model_dump(), 202)
