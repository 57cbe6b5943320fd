"""Submitting jobs: a status row first, then the queue message (idempotent by job_id)."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from shared.db.repos.jobs import JobRecord, JobRepository
from shared.jobs.kinds import JobKind
from shared.jobs.messages import PAYLOADS, JobMessage


class JobQueue:
    """The ingestion queue; messages go as plain JSON text."""

    def __init__(self, queue_service: Any, queue_name: str) -> None:
        self.client = queue_service.get_queue_client(queue_name)

    def ensure(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self.client.create_queue()

    def send(self, message: JobMessage) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.client.send_message(message.to_json())
        except ResourceNotFoundError:  # first message on a new account: make the queue
            self.ensure()
            self.client.send_message(message.to_json())


class JobSubmitter:
    def __init__(self, jobs: JobRepository, queue: JobQueue) -> None:
        self.jobs = jobs
        self.queue = queue

    def submit(
        self, kind: str, payload: dict[str, Any], job_id: str | None = None
    ) -> tuple[JobRecord, bool]:
        """Record and enqueue a job. The same job_id twice enqueues once.

        The payload is validated here so a bad HTTP request is a 400, not a failed job.
        """
        PAYLOADS[JobKind(kind)].model_validate(payload)
        message = JobMessage(job_id=job_id or uuid.uuid4().hex, kind=kind, payload=payload)  # type: ignore[arg-type]
        record, created = self.jobs.create(message.job_id, kind, payload)
        if created:
            self.queue.send(message)
        return record, created

    def retry(self, job_id: str) -> JobRecord | None:
        """Requeue a failed job with its original payload; None if it is not failed."""
        record = self.jobs.get(job_id)
        if record is None or not self.jobs.requeue(job_id):
            return None
        self.queue.send(JobMessage(job_id=job_id, kind=record.kind, payload=record.payload))  # type: ignore[arg-type]
        return self.jobs.get(job_id)
