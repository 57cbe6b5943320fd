"""Runs one queue message: parse, find or make the job row, dispatch to its handler.

- A malformed message is recorded as a failed job with the reason and not retried.
- A permanent failure (the input itself is wrong) fails the job without retry.
- Anything else is recorded and re-raised so the host retries; after the last
  allowed dequeue the message goes to the poison queue, the row says `failed`, and
  a handler with a `give_up(payload, reason)` method cleans up (a model says why).
- A job that already succeeded is not run again (messages arrive at least once).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from shared.db.repos.jobs import JobRepository
from shared.errors import InvalidInputError
from shared.jobs.kinds import KINDS, UNKNOWN_KIND, JobStatus
from shared.jobs.messages import MalformedMessageError, parse_message
from shared.jobs.payloads import PayloadStore, is_reference

log = logging.getLogger(__name__)
MALFORMED = "malformed message: "


class PermanentJobError(InvalidInputError):
    """The job cannot succeed as submitted; retrying would only repeat the failure."""

    code = "permanent_failure"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


Handler = Callable[[str, BaseModel], dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    job_id: str
    status: str  # a JobStatus (succeeded, failed), or "skipped" for a replayed message
    detail: str = ""


class JobRunner:
    def __init__(
        self,
        jobs: JobRepository,
        handlers: dict[str, Handler],
        payloads: PayloadStore | None = None,
    ) -> None:
        self.jobs = jobs
        self.handlers = handlers
        self.payloads = payloads

    def _resolve(self, reference: dict[str, Any]) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        if self.payloads is None:
            raise LookupError("this runner reads no payload references")
        try:
            return self.payloads.load(reference)
        except ResourceNotFoundError:
            raise LookupError(f"the payload blob {reference['$blob']!r} does not exist") from None

    def run(
        self,
        body: str | bytes,
        *,
        message_id: str = "",
        dequeue_count: int = 1,
        max_dequeue_count: int = 5,
    ) -> Outcome:
        try:
            message, payload = parse_message(body, self._resolve)
        except MalformedMessageError as exc:
            return self._malformed(exc, body, message_id)

        job_id, kind = message.job_id, message.kind
        self.jobs.create(job_id, kind, message.payload)
        current = self.jobs.get(job_id)
        if current is not None and current.status == JobStatus.SUCCEEDED:
            log.info("job %s already succeeded; message ignored", job_id)
            return Outcome(job_id, "skipped", "already succeeded")
        self.jobs.start(job_id)
        try:
            result = self.handlers[kind](job_id, payload)
        except PermanentJobError as exc:
            self.jobs.fail(job_id, exc.reason)
            return Outcome(job_id, JobStatus.FAILED, exc.reason)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if dequeue_count >= max_dequeue_count:
                final = f"{reason} (after {dequeue_count} attempts)"
                self.jobs.fail(job_id, final)
                give_up = getattr(self.handlers[kind], "give_up", None)
                if give_up is not None:
                    give_up(payload, final)
            else:
                self.jobs.retry_later(job_id, reason)
            raise
        self.jobs.succeed(job_id, result)
        if self.payloads is not None and is_reference(message.payload):
            self.payloads.delete(message.payload)  # no retry reads it again
        return Outcome(job_id, JobStatus.SUCCEEDED)

    def _malformed(self, exc: MalformedMessageError, body: str | bytes, message_id: str) -> Outcome:
        raw = body.encode("utf-8", errors="replace") if isinstance(body, str) else body
        fallback = f"malformed-{message_id or hashlib.sha256(raw).hexdigest()[:16]}"[:64]
        preview = raw[:2000].decode("utf-8", errors="replace")
        # A kind outside the enum is recorded as "unknown" (what `GET jobs?kind=` filters
        # on); the reason still quotes what the message said.
        kind = exc.kind if exc.kind in KINDS else UNKNOWN_KIND
        job_id = exc.job_id or fallback
        record, created = self.jobs.create(job_id, kind, {"raw": preview})
        if not created and not (record.error or "").startswith(MALFORMED):
            # The id names a job a valid message made: a bad message must not overwrite it.
            job_id = fallback
            self.jobs.create(job_id, kind, {"raw": preview})
        self.jobs.fail(job_id, f"{MALFORMED}{exc.reason}")
        log.warning("malformed job message %s: %s", job_id, exc.reason)
        return Outcome(job_id, JobStatus.FAILED, exc.reason)
