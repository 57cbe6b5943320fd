"""Runs one queue message: parse, find or make the job row, dispatch to its handler.

- A malformed message is recorded as a failed job with the reason and not retried.
- A permanent failure (the input itself is wrong) fails the job without retry.
- Anything else is recorded and re-raised so the host retries; after the last
  allowed dequeue the message goes to the poison queue, the row says `failed`, and
  a handler with a `give_up(payload, reason)` method cleans up (a model says why).
- A job that already succeeded is not run again (messages arrive at least once), and a
  job is claimed atomically (`JobRepository.claim`): of duplicate messages one runs it;
  only that message's redelivery (its invocation died) may take over a `running` job.

Telemetry: the job runs in a span that continues the message's `traceparent` (so the
upload, the enqueue and the job share one trace) and links to the host's invocation
span; each attempt records hartonomous.job.duration and hartonomous.jobs by kind and
outcome (succeeded, failed, retry, skipped), and giving up counts hartonomous.queue.poisoned.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from pydantic import BaseModel

from shared import telemetry
from shared.errors import InvalidInputError
from shared.jobs.kinds import KINDS, UNKNOWN_KIND, JobStatus
from shared.jobs.messages import MalformedMessageError, parse_message
from shared.jobs.payloads import PayloadStore, is_reference
from shared.jobs.repository import JobRepository

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
        *,
        queue_name: str = "ingestion-jobs",
        max_dequeue_count: int = 5,
    ) -> None:
        """`max_dequeue_count`: the attempt after which the host moves a message to the
        poison queue; the runner marks the job failed on that attempt."""
        self.jobs = jobs
        self.max_dequeue_count = max_dequeue_count
        self.handlers = handlers
        self.payloads = payloads
        self.queue_name = queue_name

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
        max_dequeue_count: int | None = None,
    ) -> Outcome:
        if max_dequeue_count is None:
            max_dequeue_count = self.max_dequeue_count
        started = time.perf_counter()
        try:
            message, payload = parse_message(body, self._resolve)
        except MalformedMessageError as exc:
            outcome = self._malformed(exc, body, message_id)
            _record_attempt(exc.kind or UNKNOWN_KIND, JobStatus.FAILED, started)
            return outcome
        last = dequeue_count >= max_dequeue_count
        status = "retry"
        with _job_span(message.kind, message.job_id, message.traceparent, dequeue_count):
            try:
                outcome = self._run(message, payload, message_id, dequeue_count, max_dequeue_count)
                status = outcome.status
                return outcome
            except Exception:
                status = JobStatus.FAILED if last else "retry"
                if last:
                    telemetry.record(
                        "hartonomous.queue.poisoned",
                        1,
                        {"queue": self.queue_name, "kind": message.kind},
                    )
                raise
            finally:
                _record_attempt(message.kind, str(status), started)

    def _run(
        self,
        message: Any,
        payload: BaseModel,
        message_id: str,
        dequeue_count: int,
        max_dequeue_count: int,
    ) -> Outcome:
        job_id, kind = message.job_id, message.kind
        self.jobs.create(job_id, kind, message.payload)
        # Without a message id (a direct call) the claim is this call's alone.
        if not self.jobs.claim(job_id, message_id or f"local-{uuid.uuid4().hex}"):
            # Succeeded, or running for another message: that message is not deleted
            # until its run ends, and is redelivered (and takes over) if the run dies.
            current = self.jobs.get(job_id)
            detail = f"already {current.status if current else 'gone'}"
            log.info("job %s %s; message ignored", job_id, detail)
            return Outcome(job_id, "skipped", detail)
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


def _record_attempt(kind: str, outcome: str, started: float) -> None:
    attributes = {"kind": kind, "outcome": outcome}
    telemetry.record("hartonomous.job.duration", (time.perf_counter() - started) * 1000, attributes)
    telemetry.record("hartonomous.jobs", 1, attributes)


@contextmanager
def _job_span(kind: str, job_id: str, traceparent: str | None, attempt: int) -> Iterator[Any]:
    """The job's span: a child of the sender's span (the message's traceparent), linked
    to the invocation that runs it, which is the current span here."""
    invocation = trace.get_current_span().get_span_context()
    links = [trace.Link(invocation)] if invocation.is_valid else []
    with (
        telemetry.continued(traceparent),
        telemetry.tracer().start_as_current_span(
            telemetry.SPAN_JOB.format(kind=kind),
            links=links,
            attributes={"job.id": job_id, "job.kind": kind, "job.attempt": attempt},
        ) as span,
    ):
        yield span
