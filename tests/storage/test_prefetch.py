"""Reading ahead of a consumer on a thread of its own, as downloads are read."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from shared.storage.prefetch import prefetch


def test_prefetch_keeps_order_and_raises_the_producers_error_in_place() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise OSError("connection reset")

    got: list[int] = []
    with pytest.raises(OSError, match="connection reset"):
        for item in prefetch(items(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_prefetch_stops_its_thread_when_the_consumer_stops_early() -> None:
    produced: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    before = threading.active_count()
    stream = prefetch(endless(), depth=3)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before
    assert len(produced) <= 3 + 3 + 2  # read ahead by at most the queue depth, then stopped
