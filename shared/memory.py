"""Give freed heap memory back to the operating system after a large load.

Why: loading a set from SQL builds one bytes object per row (1.5 KB at 384 dims), far
below glibc's mmap threshold, so they live in the heap arenas; once freed, the arenas
keep the pages, and a 100k-row load left 1.2x the set's float32 size resident for good
(0.36x after a trim). On Flex Consumption the instance's memory limit counts those
pages, so the cache budget would be spent twice.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; absent on musl, macOS, Windows
    except (AttributeError, OSError):
        return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system (glibc ``malloc_trim``); False where the
    C library has no such call. Costs a walk of the heap: call it after large frees,
    not per request."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
