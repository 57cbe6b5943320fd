"""A buffer pool for the hot paths (in the manner of .NET's ArrayPool).

Scoring a query against a large matrix needs an N-sized score buffer and scratch space on
every request; allocating them each time churns the allocator and page-faults fresh memory.
The pool keeps released buffers by (dtype, size class), where a size class is the next
power of two of the element count, and hands out views of the requested shape.
It is thread-safe and bounded: it never holds more than ``max_bytes`` of idle buffers;
returns beyond that are dropped (left to the garbage collector).

A rented array must not be used after it is given back: the next renter overwrites it.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from math import prod

import numpy as np
from numpy.typing import DTypeLike

Shape = int | tuple[int, ...]

DEFAULT_MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of the pool's counters."""

    rents: int
    hits: int
    misses: int
    returns: int
    dropped: int
    bytes_held: int


def size_class(count: int) -> int:
    """The element count a buffer for ``count`` elements is allocated with."""
    return 1 if count <= 1 else 1 << (count - 1).bit_length()


def _owner(arr: np.ndarray) -> np.ndarray:
    base = arr
    while isinstance(base.base, np.ndarray):
        base = base.base
    return base


class BufferPool:
    """Rents numpy buffers by size class; see the module docstring.

    A rent or a return takes the lock once: on the search paths a small set's whole query
    costs a few hundred microseconds, of which five rents are a visible share. Rented
    buffers are tracked by weak reference, so one never given back is still freed."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self._free: dict[tuple[np.dtype, int], list[np.ndarray]] = {}
        # id(buffer) -> a weak reference to it, while it is rented
        self._out: dict[int, weakref.ref[np.ndarray]] = {}
        self._lock = threading.Lock()
        self._rents = self._hits = self._misses = self._returns = self._dropped = 0
        self._held = 0

    def rent_array(self, shape: Shape, dtype: DTypeLike = np.float32) -> np.ndarray:
        """A C-contiguous array of ``shape`` (contents undefined); give it back when done."""
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        count = prod(dims)
        if any(s < 0 for s in dims):
            raise ValueError(f"negative dimension in shape {dims}")
        dt = np.dtype(dtype)
        key = (dt, size_class(count))
        with self._lock:
            self._rents += 1
            free = self._free.get(key)
            if free:
                base = free.pop()
                self._held -= base.nbytes
                self._hits += 1
                self._out[id(base)] = weakref.ref(base)
                return base[:count].reshape(dims)
            self._misses += 1
        base = np.empty(key[1], dtype=dt)
        with self._lock:
            if len(self._out) > _PURGE_FROM:  # entries of buffers dropped without a return
                self._out = {k: r for k, r in self._out.items() if r() is not None}
            self._out[id(base)] = weakref.ref(base)
        return base[:count].reshape(dims)

    def give_back(self, arr: np.ndarray) -> None:
        """Return a rented array (or any view of it); a second return raises ValueError."""
        base = _owner(arr)
        with self._lock:
            ref = self._out.get(id(base))
            if ref is None or ref() is not base:
                raise ValueError("array was not rented from this pool or was already returned")
            del self._out[id(base)]
            self._returns += 1
            if self._held + base.nbytes > self.max_bytes:
                self._dropped += 1
                return
            self._free.setdefault((base.dtype, base.size), []).append(base)
            self._held += base.nbytes

    def rent(self, shape: Shape, dtype: DTypeLike = np.float32) -> _Rental:
        """``with pool.rent((n, d)) as arr:`` -- the buffer goes back even on an exception."""
        return _Rental(self, self.rent_array(shape, dtype))

    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(
                rents=self._rents,
                hits=self._hits,
                misses=self._misses,
                returns=self._returns,
                dropped=self._dropped,
                bytes_held=self._held,
            )

    def clear(self) -> None:
        """Drop every idle buffer (rented ones stay valid)."""
        with self._lock:
            self._free.clear()
            self._held = 0


#: Rented buffers tracked before the entries of those dropped without a return are swept.
_PURGE_FROM = 4096


class _Rental:
    """What ``BufferPool.rent`` gives: the array on entry, back to the pool on exit."""

    __slots__ = ("_pool", "_arr")

    def __init__(self, pool: BufferPool, arr: np.ndarray) -> None:
        self._pool = pool
        self._arr = arr

    def __enter__(self) -> np.ndarray:
        return self._arr

    def __exit__(self, *exc: object) -> None:
        self._pool.give_back(self._arr)


_DEFAULT: BufferPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> BufferPool:
    """The process-wide pool the vector hot paths share."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                from shared.settings import get_settings

                _DEFAULT = BufferPool(get_settings().buffer_pool_bytes)
    return _DEFAULT
