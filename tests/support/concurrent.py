"""Calls released at the same moment from many threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def together(n: int, call: Callable[[int], object]) -> list[object]:
    """`call(i)` for i in range(n), all released at once; results or exceptions, in order."""
    start = threading.Barrier(n)

    def one(i: int) -> object:
        start.wait()
        try:
            return call(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))
