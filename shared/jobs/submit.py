"""Submitting jobs: a status row first, then the queue message (idempotent by job_id)."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from shared.errors import ConflictError, NotFoundError, UnavailableError
from shared.jobs.handlers import payload_shape
from shared.jobs.kinds import KINDS
from shared.jobs.messages import JobMessage
from shared.jobs.payloads import MAX_INLINE_BYTES, PayloadStore, message_bytes, same_payload
from shared.jobs.repository import JobRecord, JobRepository
from shared.telemetry import inject_traceparent

#: SDK retries of a queue send: none (see JobQueue.send).
SEND_RETRIES = 0
#: Seconds a caller is told to wait before retrying a job that was not queued.
RETRY_AFTER = 30


class JobQueue:
    """The ingestion queue; messages go as plain JSON text."""

    def __init__(self, queue_service: Any, queue_name: str) -> None:
        self.client = queue_service.get_queue_client(queue_name)

    def ensure(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self.client.create_queue()

    def send(self, message: JobMessage) -> None:
        """Send once, no SDK retry: a send that timed out may still have reached the
        queue, and a retry would then queue the message twice."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.client.send_message(message.to_json(), retry_total=SEND_RETRIES)
        except ResourceNotFoundError:  # first message on a new account: make the queue
            self.ensure()
            self.client.send_message(message.to_json(), retry_total=SEND_RETRIES)


class JobSubmitter:
    def __init__(self, jobs: JobRepository, queue: JobQueue, payloads: PayloadStore) -> None:
        self.jobs = jobs
        self.queue = queue
        self.payloads = payloads

    def submit(
        self, kind: str, payload: dict[str, Any], job_id: str | None = None
    ) -> tuple[JobRecord, bool]:
        """Record and enqueue a job. The same job_id twice enqueues once; the same
        job_id with another kind or payload is a ConflictError (its data would be lost).

        The payload is validated here so a bad HTTP request is a 400, not a failed job.
        One too big for a queue message travels as a blob (see payloads.py).
        """
        payload_shape(kind).model_validate(payload)
        job_id = job_id or uuid.uuid4().hex
        trace = inject_traceparent()
        message = JobMessage(job_id=job_id, kind=kind, payload=payload, traceparent=trace)  # type: ignore[arg-type]
        if message_bytes(message.to_json()) > MAX_INLINE_BYTES:
            existing = self.jobs.get(job_id)
            if existing is not None:  # a repeat: no second copy of the payload blob
                return _same_job(existing, kind, payload), False
            stored = self.payloads.put(payload)
            message = JobMessage(job_id=job_id, kind=kind, payload=stored, traceparent=trace)  # type: ignore[arg-type]
        record, created = self.jobs.create(job_id, kind, message.payload)
        if not created:
            return _same_job(record, kind, payload), False
        self._send(message)  # raises, having marked the row failed, if it cannot
        return record, created

    def get(self, job_id: str) -> JobRecord:
        record = self.jobs.get(job_id)
        if record is None:
            raise NotFoundError("no job with this id", field="job_id")
        return record

    def list(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Jobs, newest first."""
        return self.jobs.list(status=status, kind=kind, limit=limit)

    def retry(self, job_id: str) -> JobRecord:
        """Requeue a failed job with its original payload. A job from a malformed message
        cannot run again as it is (its kind or payload never parsed), and only a failed
        job can be retried: both are conflicts."""
        current = self.get(job_id)
        if current.kind not in KINDS:
            raise ConflictError(
                "this job came from a malformed message; submit a corrected job",
                code="not_retryable",
            )
        if not self.jobs.requeue(job_id):
            raise ConflictError(
                f"job is {current.status}; only failed jobs can be retried", code="not_failed"
            )
        message = JobMessage(
            job_id=job_id,
            kind=current.kind,  # type: ignore[arg-type]
            payload=current.payload,
            traceparent=inject_traceparent(),
        )
        self._send(message)
        return self.get(job_id)

    def _send(self, message: JobMessage) -> None:
        """Send, or fail the row saying so: a row is never left queued with no message.

        When the request went out but no answer came back (a read timeout, a connection
        cut mid-reply), the message may be on the queue all the same: the row is failed
        too (so a retry is possible), and both it and the reply say the job may still
        run. Should it arrive, the runner runs a failed job; a retry of a job that has
        meanwhile succeeded is refused, and a replayed message is skipped."""
        from azure.core.exceptions import ServiceResponseError

        try:
            self.queue.send(message)
        except Exception as exc:
            unknown = isinstance(exc, ServiceResponseError)
            what = (
                "the queue did not confirm the job, which may still run"
                if unknown
                else "the job could not be queued"
            )
            self.jobs.fail(
                message.job_id,
                f"{what} ({type(exc).__name__}); if it does not run, retry it with "
                f"POST /api/jobs/{message.job_id}/retry",
            )
            if unknown:
                raise JobUnconfirmedError(message.job_id) from exc
            raise JobNotQueuedError(message.job_id) from exc


def _same_job(record: JobRecord, kind: str, payload: dict[str, Any]) -> JobRecord:
    """The existing job when it is this one again; else a ConflictError naming job_id."""
    if record.kind != kind:
        raise ConflictError(
            f"job_id: job {record.id} already exists with a different kind ({record.kind}); "
            "use a new job_id",
            field="job_id",
        )
    if not same_payload(record.payload, payload):
        raise ConflictError(
            f"job_id: job {record.id} already exists with a different payload; use a new job_id",
            field="job_id",
        )
    return record


class JobSendError(UnavailableError):
    """The message for a job did not reach the queue for sure; the row says `failed`, and
    the reply says what happened and how to retry."""

    retry_after = RETRY_AFTER
    #: What happened, completed by the retry hint (``{job_id}`` is filled in).
    situation = ""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"job {job_id} {self.situation.format(job_id=job_id)}"
            f"retry it with POST /api/jobs/{job_id}/retry"
        )
        self.job_id = job_id


class JobNotQueuedError(JobSendError):
    """The queue refused the message; the job row says `failed` and can be retried."""

    code = "not_queued"
    situation = "could not be queued: the queue service did not accept it; "


class JobUnconfirmedError(JobSendError):
    """The queue did not answer a send it may have received: the job may or may not
    run. Its row says `failed` with that reason; should the message arrive the job
    runs all the same, and once it has succeeded a retry is refused."""

    code = "not_confirmed"
    situation = (
        "may not have been queued: the queue service did not answer, and the message may "
        "still arrive; check GET /api/jobs/{job_id} later and, if it has not run, "
    )
