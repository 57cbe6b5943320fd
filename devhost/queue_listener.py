"""Queue trigger: poll one queue the way the Storage extension does.

- Receive up to `batchSize` messages; fetch the next batch when the messages in flight
  drop to `newBatchThreshold`. Poll fast while messages come, back off exponentially
  (from 100 ms) to `maxPollingInterval` while the queue is empty.
- Every received message holds a short visibility lease (LOCAL_QUEUE_LEASE_SECONDS,
  30 s by default), renewed every third of it while the message waits or runs, as the
  Storage extension renews its own (10-minute) lease while the function runs. Short,
  because a message the host lost track of stays invisible until its lease ends: the
  reply to a receive can be lost after storage leased the messages (a connection cut
  mid-reply; the SDK's retry then finds them invisible), or the host can die. With the
  short lease such a message is back within seconds; renewal keeps a long invocation's
  message from being handed to another receiver. A renewal that fails (storage out of
  reach) is logged and tried again about every 2 s, so a running message keeps its
  lease through an outage of about two thirds of the lease; a renewal answered "gone"
  (not found, or the pop receipt no longer matches: its lease ran out and it was
  received again) ends that message's renewals.
- Each renewal returns a new pop receipt: the delete, the release and the move to
  poison use the latest one (one lock per message orders them after a renewal that is
  under way), and nothing renews a message once one of them has started.
- Delete a message only after its function succeeded and its outputs were written. On
  failure make it visible again after `visibilityTimeout`; once its dequeue count
  reaches `maxDequeueCount`, copy its original text to `<queue>-poison` and delete it.
- Stopping: no new receives; messages received but not started are made visible at
  once; running invocations finish (the caller bounds the wait) and their leases are
  renewed until they do.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from .hostconfig import QueueOptions
from .invocation import Bound, Invoker
from .loader import FunctionSpec
from .otel_sdk import queue_span
from .queue_messages import decode_body, queue_binding_data, to_function_message
from .storage_clients import StorageClients
from .workers import PendingWork

log = logging.getLogger("devhost.queue")

MIN_POLL_SECONDS = 0.1
DEFAULT_LEASE_SECONDS = 30
MAX_LEASE_SECONDS = 7 * 86400  # the longest visibility timeout Storage accepts
RENEWALS_PER_LEASE = 3  # a lease outlasts two renewals in a row that fail
RENEW_RETRY_SECONDS = 2.0  # after a failed renewal (at most a quarter of the interval)


def next_delay(current: float, maximum: float) -> float:
    """Exponential backoff for an empty queue, capped at maxPollingInterval."""
    return min(max(current, MIN_POLL_SECONDS) * 2, maximum)


def trigger_argument(message: Any, annotation: Any) -> Any:
    """The function's view of a message: func.QueueMessage, or str/bytes by annotation."""
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if name == "str":
        return message.get_body().decode("utf-8")
    if name == "bytes":
        return message.get_body()
    return message


def lease_is_gone(exc: Exception) -> bool:
    """Storage's answer that a message is no longer ours to renew: deleted, or its lease
    ran out and a receive gave it a new pop receipt."""
    if isinstance(exc, ResourceNotFoundError):
        return True
    return isinstance(exc, HttpResponseError) and (
        getattr(exc, "error_code", None) == "PopReceiptMismatch"
    )


@dataclass(eq=False)
class Lease:
    """A received message and its current pop receipt, while the host holds it."""

    message: Any
    pop_receipt: str
    due: float  # monotonic time of the next renewal
    settled: bool = False  # deleted, released, poisoned or left to expire: no renewals
    gone: bool = False  # storage said it is no longer ours
    lock: threading.Lock = field(default_factory=threading.Lock)

    def settle(self) -> str:
        """Stop renewing (after a renewal under way) and return the latest receipt."""
        with self.lock:
            self.settled = True
            self.due = math.inf
            return self.pop_receipt


class QueueListener(PendingWork):
    """Polls one trigger queue and runs its function for each message."""

    def __init__(
        self,
        spec: FunctionSpec,
        storage: StorageClients,
        invoker: Invoker,
        options: QueueOptions,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> None:
        if not 1 <= lease_seconds <= MAX_LEASE_SECONDS:
            raise ValueError(f"queue lease must be 1 to {MAX_LEASE_SECONDS} s: {lease_seconds}")
        self.spec = spec
        connection = spec.trigger.get("connection")
        self.queue_name = spec.trigger["queueName"]
        self._queue = storage.queue(connection, self.queue_name)
        self._poison = storage.queue(connection, f"{self.queue_name}-poison")
        self._invoker = invoker
        self._options = options
        self._lease = int(lease_seconds)
        self._renew_every = self._lease / RENEWALS_PER_LEASE
        self._renew_retry = min(RENEW_RETRY_SECONDS, self._renew_every / 4)
        self._executor = ThreadPoolExecutor(
            max_workers=options.batch_size, thread_name_prefix=f"queue-{spec.name}"
        )
        self._lock = threading.Condition()
        self._pending: dict[Future[None], Lease] = {}  # received, not finished
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"poll-{spec.name}", daemon=True)
        self._renewer = threading.Thread(
            target=self._renew_leases, name=f"renew-{spec.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        self._renewer.start()

    def stop(self) -> int:
        """Stop receiving and hand back received-but-not-started messages; returns how many."""
        with self._lock:
            self._stopping.set()
            # cancel() runs _finished, which edits _pending: iterate over a copy
            waiting = [lease for f, lease in list(self._pending.items()) if f.cancel()]
            self._lock.notify_all()
        for lease in waiting:
            self._release(lease.message.id, lease.settle())
        return len(waiting)

    # polling -------------------------------------------------------------------------

    def _poll(self) -> None:
        delay = MIN_POLL_SECONDS
        options = self._options
        while not self._stopping.is_set():
            with self._lock:
                self._lock.wait_for(
                    lambda: (
                        self._stopping.is_set() or len(self._pending) <= options.new_batch_threshold
                    )
                )
            if self._stopping.is_set():
                break
            # The lease starts when storage handles the receive: count from before it.
            asked = time.monotonic()
            try:
                messages = self._receive()
            except Exception as exc:
                log.warning("receiving from queue %s failed: %s", self.queue_name, exc)
                messages = []
            if not messages:
                self._stopping.wait(delay)
                delay = next_delay(delay, options.max_polling_interval)
                continue
            delay = MIN_POLL_SECONDS
            for message in messages:
                self._dispatch(message, asked)

    def _receive(self) -> list[Any]:
        count = self._options.batch_size
        pages = self._queue.receive_messages(
            messages_per_page=count, max_messages=count, visibility_timeout=self._lease
        ).by_page()
        return list(next(pages, []))

    def _dispatch(self, message: Any, asked: float) -> None:
        if message.dequeue_count > self._options.max_dequeue_count:
            self._to_poison(message, message.pop_receipt)
            return
        lease = Lease(message, message.pop_receipt, due=asked + self._renew_every)
        with self._lock:
            if not self._stopping.is_set():
                future = self._executor.submit(self._process, lease)
                self._pending[future] = lease
                future.add_done_callback(self._finished)
                return
        self._release(message.id, lease.settle())

    def _finished(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.pop(future, None)
            self._lock.notify_all()

    # leases --------------------------------------------------------------------------

    def _renew_leases(self) -> None:
        """Renew the leases that are due, until the listener stopped and nothing is held."""
        while True:
            with self._lock:
                if self._stopping.is_set() and not self._pending:
                    return
                leases = list(self._pending.values())
                now = time.monotonic()
                wait = min((lease.due for lease in leases), default=math.inf) - now
                if wait > 0:  # woken early when a message is finished or on stop
                    self._lock.wait(min(wait, self._renew_every))
                    continue
            self._renew_round(leases)

    def _renew_round(self, leases: list[Lease]) -> None:
        due = [lease for lease in leases if lease.due <= time.monotonic()]
        for index, lease in enumerate(due):
            try:
                self._renew(lease)
            except (ServiceRequestError, ServiceResponseError) as exc:
                # Storage is out of reach: the others would fail the same way, and each
                # try can take a read timeout. All of them are tried again shortly.
                retry = time.monotonic() + self._renew_retry
                for rest in due[index:]:
                    rest.due = retry
                log.warning(
                    "renewing the lease of %d message(s) on %s failed, trying again in %.0f s: %s",
                    len(due) - index,
                    self.queue_name,
                    self._renew_retry,
                    exc,
                )
                return
            except Exception as exc:
                lease.due = time.monotonic() + self._renew_retry
                log.warning(
                    "renewing the lease of message %s on %s failed: %s",
                    lease.message.id,
                    self.queue_name,
                    exc,
                )

    def _renew(self, lease: Lease) -> None:
        """Push the message's visibility out to a full lease; keep the new pop receipt."""
        with lease.lock:
            if lease.settled or lease.gone:
                lease.due = math.inf
                return
            asked = time.monotonic()
            try:
                renewed = self._queue.update_message(
                    lease.message.id,
                    pop_receipt=lease.pop_receipt,
                    visibility_timeout=self._lease,
                    retry_total=0,  # the next round is the retry
                )
            except HttpResponseError as exc:
                if not lease_is_gone(exc):
                    raise
                lease.gone, lease.due = True, math.inf
                log.warning(
                    "message %s on %s is no longer held by this host (%s): it may run again",
                    lease.message.id,
                    self.queue_name,
                    getattr(exc, "error_code", None) or exc.status_code,
                )
                return
            lease.pop_receipt = renewed.pop_receipt
            lease.due = asked + self._renew_every

    # one message -----------------------------------------------------------------------

    def _process(self, lease: Lease) -> None:
        message = lease.message
        trigger_name = self.spec.trigger["name"]
        annotation = self.spec.annotations.get(trigger_name)
        encoding = self._options.message_encoding

        def bind() -> Bound:
            body = decode_body(message.content or "", encoding)
            function_message = to_function_message(message, body)
            argument = trigger_argument(function_message, annotation)
            return {trigger_name: argument}, queue_binding_data(function_message)

        try:
            self._invoker.invoke(self.spec, bind, queue_span(self.queue_name, message.id))
        except Exception:
            self._failed(lease)
            return
        try:
            self._queue.delete_message(message.id, lease.settle())
        except Exception as exc:  # it runs again after its lease: at-least-once
            log.warning("deleting message %s from %s failed: %s", message.id, self.queue_name, exc)

    def _failed(self, lease: Lease) -> None:
        message = lease.message
        receipt = lease.settle()
        if message.dequeue_count >= self._options.max_dequeue_count:
            self._to_poison(message, receipt)
            return
        try:
            self._queue.update_message(
                message.id,
                pop_receipt=receipt,
                visibility_timeout=math.ceil(self._options.visibility_timeout),
            )
        except Exception as exc:  # the lease runs out instead: the message is not lost
            log.warning("releasing message %s failed: %s", message.id, exc)

    def _to_poison(self, message: Any, pop_receipt: str) -> None:
        poison = f"{self.queue_name}-poison"
        log.warning(
            "Message %s has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            message.id,
            self._options.max_dequeue_count,
            poison,
        )
        try:
            self._poison.send_message(message.content or "")
            self._queue.delete_message(message.id, pop_receipt)
        except Exception as exc:  # still in the source queue: retried, then poisoned again
            log.error("moving message %s to %s failed: %s", message.id, poison, exc)

    def _release(self, message_id: str, pop_receipt: str) -> None:
        """Make a received message visible again now (shutdown before it started)."""
        try:
            self._queue.update_message(message_id, pop_receipt=pop_receipt, visibility_timeout=0)
        except Exception as exc:
            log.warning("releasing message %s failed: %s", message_id, exc)
