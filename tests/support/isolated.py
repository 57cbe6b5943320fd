"""Run a measurement in a fresh interpreter.

tracemalloc counts every thread of a process: a test that measures what its own code
allocates runs that code where no other test's background work (a search snapshot
upload, an exporter) can allocate at the same time.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any


def _call(fn: Callable[..., Any], args: tuple[Any, ...], out: Any) -> None:
    out.put(fn(*args))


def run_isolated(fn: Callable[..., Any], *args: Any, timeout: float = 300) -> Any:
    """`fn(*args)` in a spawned process (`fn` importable at module level); its result."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    process = ctx.Process(target=_call, args=(fn, args, out))
    process.start()
    try:
        return out.get(timeout=timeout)
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
