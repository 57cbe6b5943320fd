"""Dynamic batching: concurrent calls that can run as one batch are run as one.

Calls of the same key (the same search set and metric) form batches of up to
``max_batch`` rows, as Triton's dynamic batcher does: each call says how many rows it
brings (a query vector, a text, an inference input's leading dimension), one by default.
A call that finds no batch of its key running starts at once (after ``max_delay``
seconds, if that is set, for company): a lone caller waits for nobody. Calls that arrive
while a batch runs gather into the next one, which starts when the running one ends or
when it is full (a call that would overfill it starts the one after). Right after a
batch of several calls ends, a new call waits up to ``REJOIN_SECONDS`` for that batch's
callers to come back, so callers under steady load keep running together. The first caller of a
batch runs it on its own thread, so no thread is added; the others wait for their part
of the result. Each key's queue is bounded: a caller past it gets
``TooBusyError`` (HTTP 429 with Retry-After) at once, instead of waiting without end.

A batch that raises is run again one item at a time, so one caller's bad input fails
that caller only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared import telemetry
from shared.errors import TooBusyError

#: The longest a batch waits for the one running before it (a safety bound: a batch
#: that runs longer than this no longer holds the next one back).
RUNNING_BATCH_WAIT = 30.0
#: For this long after a batch of several calls ends, a new call of its key gathers
#: with the callers of that batch coming back (up to as many as it held) instead of
#: running alone. Without it, closed-loop callers split into a batch of one (the first
#: back) and a batch of all the others, in turn: 16 threads searching one set in
#: process ran 781 queries/s that way, 1,013/s with 2 ms (docs/concurrency.md).
REJOIN_SECONDS = 0.002

In = TypeVar("In")
Out = TypeVar("Out")


class _Pending(Generic[In]):
    """One call in a batch. Only a call that waits for another to run its batch gets an
    event: a lone caller leads its own batch and pays for no event (a few µs a call,
    which a tiny model's whole run is)."""

    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item: In, waits: bool) -> None:
        self.item = item
        self.done: threading.Event | None = threading.Event() if waits else None
        self.result: Any = None
        self.error: BaseException | None = None


class _Queue(Generic[In]):
    __slots__ = ("items", "rows", "full", "expect")

    def __init__(self, expect: int = 0) -> None:
        self.items: list[_Pending[In]] = []
        self.rows = 0
        self.full = threading.Event()
        #: Calls this batch waits for, when it gathers the callers of the batch that
        #: just ended (0: none expected).
        self.expect = expect


@dataclass(frozen=True)
class _Ended:
    """The last gathered batch of a key: when it ended and how many calls it held."""

    at: float
    calls: int


class Batcher(Generic[In, Out]):
    """Runs ``run_batch(key, items) -> results`` (one result per item, in order) over the
    items concurrent callers ``submit`` with the same key."""

    def __init__(
        self,
        name: str,
        run_batch: Callable[[Hashable, Sequence[In]], Sequence[Out]],
        *,
        max_batch: int,
        max_delay: float,
        max_queue: int,
    ) -> None:
        if max_batch < 1 or max_queue < max_batch or max_delay < 0:
            raise ValueError("need max_batch >= 1, max_queue >= max_batch, max_delay >= 0")
        self.name = name
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._open: dict[Hashable, _Queue[In]] = {}  # the batch still taking items, per key
        self._queued: dict[Hashable, int] = {}  # items waiting or running, per key
        self._running: dict[Hashable, int] = {}  # batches running, per key
        self._ended: dict[Hashable, _Ended] = {}  # the last batch of several calls, per key
        self.batches = 0  # batches run so far (a batch of one included)

    def submit(self, key: Hashable, item: In, rows: int = 1) -> Out:
        """The result of `item` (run alone or with others of `key`); re-raises its error.
        ``rows``: what the item adds to its batch's size (a call of ``max_batch`` rows or
        more runs as a batch of its own)."""
        with self._lock:
            if self._queued.get(key, 0) >= self.max_queue:
                raise TooBusyError(
                    f"{self.max_queue} {self.name} calls are queued on this instance; "
                    "try again in a moment"
                )
            self._queued[key] = self._queued.get(key, 0) + 1
            alone = (
                not self.max_delay
                and key not in self._running
                and key not in self._open
                and self._rejoin(key) is None
            )
            if alone:  # nothing to gather: run here, counted as a running batch of one
                self._running[key] = 1
                self.batches += 1
        if alone:
            return self._run_alone(key, item)
        with self._lock:
            queue = self._open.get(key)
            if queue is not None and queue.rows + rows > self.max_batch:
                del self._open[key]  # this call would overfill it: it goes as it is
                queue.full.set()
                queue = None
            leader = queue is None
            if leader:
                ended = self._rejoin(key)
                queue = self._open[key] = _Queue(0 if ended is None else ended.calls)
            assert queue is not None
            pending: _Pending[In] = _Pending(item, waits=not leader)
            queue.items.append(pending)
            queue.rows += rows
            if queue.rows >= self.max_batch:
                del self._open[key]  # full: the next caller starts a new batch
                queue.full.set()
            elif key not in self._running and 0 < queue.expect <= len(queue.items):
                queue.full.set()  # the callers of the batch that ended are all back
        if leader:
            self._lead(key, queue)
        else:
            assert pending.done is not None
            pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def waiting(self) -> int:
        """Calls gathered into batches that have not started yet, over every key."""
        with self._lock:
            return sum(len(queue.items) for queue in self._open.values())

    def _run_alone(self, key: Hashable, item: In) -> Out:
        """A lone caller's batch of one, with none of a gathered batch's bookkeeping: the
        calls that arrive meanwhile gather into the next batch, as they would behind any
        running batch."""
        try:
            return self.run_batch(key, [item])[0]
        finally:
            with self._lock:
                self._done(key, 1)
            telemetry.record("hartonomous.batch.size", 1, {"batcher": self.name})
            telemetry.record("hartonomous.batch.queue_delay", 0.0, {"batcher": self.name})

    def _await_rejoin(self, key: Hashable, queue: _Queue[In]) -> None:
        """Hold a batch that is not full until the callers of the batch that just ended
        are back in it, for what is left of ``REJOIN_SECONDS``."""
        with self._lock:
            ended = self._rejoin(key)
            if ended is None or self._open.get(key) is not queue:  # no rejoin, or full
                return
            if not queue.expect or len(queue.items) >= queue.expect:
                return
            queue.full.clear()  # set again by the call that brings it to `expect`
            left = ended.at + REJOIN_SECONDS - time.perf_counter()
        if left > 0:
            queue.full.wait(left)

    def _rejoin(self, key: Hashable) -> _Ended | None:
        """The batch of several calls that ended less than ``REJOIN_SECONDS`` ago (under
        the lock): its callers are likely coming back, so a new call gathers with them
        instead of running alone."""
        ended = self._ended.get(key)
        if ended is None:
            return None
        if time.perf_counter() - ended.at >= REJOIN_SECONDS:
            del self._ended[key]
            return None
        return ended

    def _done(self, key: Hashable, calls: int) -> None:
        """A batch of ``calls`` ended (under the lock): its calls leave the queue count,
        and the batch gathering behind it may start."""
        if calls > 1:
            self._ended[key] = _Ended(time.perf_counter(), calls)
        else:
            self._ended.pop(key, None)
        following = self._open.get(key)
        if following is not None and calls > 1:  # its callers come back to this one
            following.expect = len(following.items) + calls
        left = self._queued[key] - calls
        if left:
            self._queued[key] = left
        else:
            del self._queued[key]
        if self._running[key] > 1:
            self._running[key] -= 1
        else:
            del self._running[key]
        if following is not None:
            following.full.set()

    def _lead(self, key: Hashable, queue: _Queue[In]) -> None:
        started = time.perf_counter()
        with self._lock:
            busy = key in self._running
        if busy:  # gather until the running batch ends (it wakes this one) or this fills
            queue.full.wait(RUNNING_BATCH_WAIT)
        elif self.max_delay > 0:
            queue.full.wait(self.max_delay)
        self._await_rejoin(key, queue)
        with self._lock:
            if self._open.get(key) is queue:
                del self._open[key]
            batch = list(queue.items)
            self._running[key] = self._running.get(key, 0) + 1
            self.batches += 1
        waited_ms = (time.perf_counter() - started) * 1000
        try:
            self._run(key, batch)
        finally:
            with self._lock:
                self._done(key, len(batch))
            for pending in batch:
                if pending.done is not None:
                    pending.done.set()
        telemetry.record("hartonomous.batch.size", len(batch), {"batcher": self.name})
        telemetry.record("hartonomous.batch.queue_delay", waited_ms, {"batcher": self.name})

    def _run(self, key: Hashable, batch: list[_Pending[In]]) -> None:
        try:
            results = self.run_batch(key, [p.item for p in batch])
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            for pending in batch:  # find whose input it was: each alone
                try:
                    pending.result = self.run_batch(key, [pending.item])[0]
                except BaseException as one:
                    pending.error = one
            return
        for pending, result in zip(batch, results, strict=True):
            pending.result = result


#: What a model's registration may set for its own batches (upload query or blob
#: metadata), over ``BATCH_MAX_SIZE`` and ``BATCH_MAX_DELAY_MS``.
MODEL_OPTIONS = ("batch_max_size", "batch_max_delay_ms")


@dataclass(frozen=True)
class BatchLimits:
    """A batcher's limits, from the settings (``BATCH_MAX_SIZE`` and the rest)."""

    max_size: int
    max_delay_ms: float
    max_queue: int

    @property
    def enabled(self) -> bool:
        return self.max_size > 1

    def for_model(self, options: Mapping[str, Any] | None) -> BatchLimits:
        """These limits with what a model's registration set (``MODEL_OPTIONS``; stored
        as the strings the registry checked with ``check_model_option``)."""
        if not options:
            return self
        size = options.get("batch_max_size")
        delay = options.get("batch_max_delay_ms")
        if size is None and delay is None:
            return self
        return BatchLimits(
            self.max_size if size is None else int(size),
            self.max_delay_ms if delay is None else float(delay),
            self.max_queue,
        )

    def batcher(
        self, name: str, run_batch: Callable[[Hashable, Sequence[In]], Sequence[Out]]
    ) -> Batcher[In, Out]:
        return Batcher(
            name,
            run_batch,
            max_batch=self.max_size,
            max_delay=self.max_delay_ms / 1000,
            max_queue=max(self.max_queue, self.max_size),
        )


def check_model_option(key: str, value: str) -> str | None:
    """Why `value` cannot be a model's `key` (one of ``MODEL_OPTIONS``), or None."""
    try:
        number = float(value) if key == "batch_max_delay_ms" else int(value)
    except ValueError:
        number = None
    if key == "batch_max_size" and (number is None or not 1 <= number <= 1024):
        return "must be a whole number of rows from 1 (never batch this model) to 1024"
    if key == "batch_max_delay_ms" and (number is None or not 0 <= number <= 1000):
        return "must be a number of milliseconds from 0 to 1000"
    return None


class Batchers(Generic[In, Out]):
    """One ``Batcher`` per distinct limits over one batch function: models whose
    registrations set their own limits batch under them, the others under the
    settings'. Keys never meet across limits, since a key is one model version."""

    def __init__(
        self, name: str, run_batch: Callable[[Hashable, Sequence[In]], Sequence[Out]]
    ) -> None:
        self.name = name
        self.run_batch = run_batch
        self._by_limits: dict[BatchLimits, Batcher[In, Out]] = {}
        self._lock = threading.Lock()

    def get(self, limits: BatchLimits) -> Batcher[In, Out]:
        batcher = self._by_limits.get(limits)
        if batcher is None:
            with self._lock:
                batcher = self._by_limits.get(limits)
                if batcher is None:
                    batcher = self._by_limits[limits] = limits.batcher(self.name, self.run_batch)
        return batcher

    @property
    def batches(self) -> int:
        """Batches run so far, over every limits."""
        return sum(b.batches for b in list(self._by_limits.values()))


def limits_from_settings() -> BatchLimits:
    """The limits ``BATCH_MAX_SIZE``, ``BATCH_MAX_DELAY_MS`` and ``BATCH_MAX_QUEUE`` set."""
    from shared.settings import get_settings

    s = get_settings()
    return BatchLimits(s.batch_max_size, s.batch_max_delay_ms, s.batch_max_queue)
