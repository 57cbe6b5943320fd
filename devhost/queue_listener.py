"""Queue trigger: poll one queue the way the Storage extension does.

- Receive up to `batchSize` messages with a visibility lease long enough for one
  invocation; fetch the next batch when the messages in flight drop to
  `newBatchThreshold`. Poll fast while messages come, back off exponentially (from
  100 ms) to `maxPollingInterval` while the queue is empty.
- Delete a message only after its function succeeded and its outputs were written. On
  failure make it visible again after `visibilityTimeout`; once its dequeue count
  reaches `maxDequeueCount`, copy its original text to `<queue>-poison` and delete it.
- Stopping: no new receives; messages received but not started are made visible at
  once; running invocations finish (the caller bounds the wait).
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .hostconfig import QueueOptions
from .invocation import Bound, Invoker
from .loader import FunctionSpec
from .messages import decode_body, queue_binding_data, to_function_message
from .storage import StorageClients
from .telemetry import queue_span
from .workers import PendingWork

log = logging.getLogger("devhost.queue")

MIN_POLL_SECONDS = 0.1


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


class QueueListener(PendingWork):
    """Polls one trigger queue and runs its function for each message."""

    def __init__(
        self,
        spec: FunctionSpec,
        storage: StorageClients,
        invoker: Invoker,
        options: QueueOptions,
        lease_seconds: int,
    ) -> None:
        self.spec = spec
        connection = spec.trigger.get("connection")
        self.queue_name = spec.trigger["queueName"]
        self._queue = storage.queue(connection, self.queue_name)
        self._poison = storage.queue(connection, f"{self.queue_name}-poison")
        self._invoker = invoker
        self._options = options
        self._lease = lease_seconds
        self._executor = ThreadPoolExecutor(
            max_workers=options.batch_size, thread_name_prefix=f"queue-{spec.name}"
        )
        self._lock = threading.Condition()
        self._pending: dict[Future[None], Any] = {}  # received, not finished
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"poll-{spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        """Stop receiving and hand back received-but-not-started messages; returns how many."""
        with self._lock:
            self._stopping.set()
            # cancel() runs _finished, which edits _pending: iterate over a copy
            waiting = [(f, m) for f, m in list(self._pending.items()) if f.cancel()]
            self._lock.notify_all()
        for _, message in waiting:
            self._release(message)
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
                self._dispatch(message)

    def _receive(self) -> list[Any]:
        count = self._options.batch_size
        pages = self._queue.receive_messages(
            messages_per_page=count, max_messages=count, visibility_timeout=self._lease
        ).by_page()
        return list(next(pages, []))

    def _dispatch(self, message: Any) -> None:
        if message.dequeue_count > self._options.max_dequeue_count:
            self._to_poison(message)
            return
        with self._lock:
            if not self._stopping.is_set():
                future = self._executor.submit(self._process, message)
                self._pending[future] = message
                future.add_done_callback(self._finished)
                return
        self._release(message)

    def _finished(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.pop(future, None)
            self._lock.notify_all()

    # one message -----------------------------------------------------------------------

    def _process(self, message: Any) -> None:
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
            self._failed(message)
            return
        try:
            self._queue.delete_message(message.id, message.pop_receipt)
        except Exception as exc:  # it runs again after its lease: at-least-once
            log.warning("deleting message %s from %s failed: %s", message.id, self.queue_name, exc)

    def _failed(self, message: Any) -> None:
        if message.dequeue_count >= self._options.max_dequeue_count:
            self._to_poison(message)
            return
        try:
            self._queue.update_message(
                message.id,
                pop_receipt=message.pop_receipt,
                visibility_timeout=math.ceil(self._options.visibility_timeout),
            )
        except Exception as exc:  # the lease runs out instead: the message is not lost
            log.warning("releasing message %s failed: %s", message.id, exc)

    def _to_poison(self, message: Any) -> None:
        poison = f"{self.queue_name}-poison"
        log.warning(
            "Message %s has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            message.id,
            self._options.max_dequeue_count,
            poison,
        )
        try:
            self._poison.send_message(message.content or "")
            self._queue.delete_message(message.id, message.pop_receipt)
        except Exception as exc:  # still in the source queue: retried, then poisoned again
            log.error("moving message %s to %s failed: %s", message.id, poison, exc)

    def _release(self, message: Any) -> None:
        """Make a received message visible again now (shutdown before it started)."""
        try:
            self._queue.update_message(
                message.id, pop_receipt=message.pop_receipt, visibility_timeout=0
            )
        except Exception as exc:
            log.warning("releasing message %s failed: %s", message.id, exc)
