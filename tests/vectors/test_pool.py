"""BufferPool: renting, bounds, thread safety, and no large allocations in steady state."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

from shared.vectors import kernels
from shared.vectors.pool import BufferPool, default_pool, size_class
from tests.support.isolated import run_isolated


def test_size_classes_are_powers_of_two() -> None:
    assert [size_class(n) for n in (0, 1, 2, 3, 4, 5, 1000, 1024, 1025)] == [
        1,
        1,
        2,
        4,
        4,
        8,
        1024,
        1024,
        2048,
    ]


def test_rent_gives_a_view_of_the_shape_and_reuses_the_buffer() -> None:
    pool = BufferPool(max_bytes=1 << 20)
    a = pool.rent_array((3, 5), np.float32)
    assert a.shape == (3, 5) and a.dtype == np.float32 and a.flags.c_contiguous
    a[...] = 7
    base_ptr = a.__array_interface__["data"][0]
    pool.give_back(a)
    b = pool.rent_array(16, np.float32)  # same size class (16) -> same memory
    assert b.__array_interface__["data"][0] == base_ptr
    pool.give_back(b)
    c = pool.rent_array(16, np.int64)  # another dtype -> another buffer
    assert c.dtype == np.int64 and c.__array_interface__["data"][0] != base_ptr
    pool.give_back(c)
    s = pool.stats()
    assert (s.rents, s.hits, s.misses, s.returns, s.dropped) == (3, 1, 2, 3, 0)
    assert s.bytes_held == 16 * 4 + 16 * 8


def test_bounded_in_bytes_held() -> None:
    pool = BufferPool(max_bytes=3000)
    arrays = [pool.rent_array(256, np.float32) for _ in range(4)]  # 1024 bytes each
    for arr in arrays:
        pool.give_back(arr)
    s = pool.stats()
    assert s.returns == 4 and s.dropped == 2 and s.bytes_held == 2048
    pool.clear()
    assert pool.stats().bytes_held == 0


def test_context_manager_returns_on_exception_and_double_return_raises() -> None:
    pool = BufferPool()
    with pytest.raises(RuntimeError), pool.rent(10) as arr:
        raise RuntimeError("boom")
    assert pool.stats().returns == 1
    with pytest.raises(ValueError, match="already returned"):
        pool.give_back(arr)
    with pytest.raises(ValueError, match="not rented"):
        pool.give_back(np.zeros(4, np.float32))


def test_default_pool_is_one_object() -> None:
    assert default_pool() is default_pool()


def test_thread_safe_no_buffer_is_rented_twice_at_once() -> None:
    pool = BufferPool(max_bytes=1 << 22)
    errors: list[str] = []

    def worker(tag: int) -> None:
        for _ in range(300):
            with pool.rent(100, np.int64) as arr:
                arr[...] = tag
                if not np.all(arr == tag):
                    errors.append("buffer shared between renters")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = pool.stats()
    assert not errors
    assert s.rents == s.returns == 2400 and s.hits + s.misses == 2400
    assert s.misses <= 8  # at most one buffer per concurrent renter


N, D, ITERS = 20_000, 384, 200


def _peak_growth(step, iters: int) -> int:
    for _ in range(5):  # warm-up: the pool fills, numpy caches settle
        step()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(iters):
        step()
    return tracemalloc.get_traced_memory()[1] - base


def _pooled_and_unpooled_growth() -> tuple[int, int, int, int]:
    """Peak heap growth of the pooled scan and of plain numpy; the pool's misses and hits."""
    rng = np.random.default_rng(1)
    m = rng.standard_normal((N, D), dtype=np.float32)
    q = rng.standard_normal(D, dtype=np.float32)
    pool = BufferPool()

    def pooled() -> None:
        with pool.rent(N, np.float32) as scores:
            kernels.dot_many(q, m, out=scores)
            kernels.top_k(scores, 10, pool=pool)

    def unpooled() -> None:
        scores = m @ q
        np.argpartition(-scores, 10)[:10]

    tracemalloc.start()
    try:
        pooled_growth = _peak_growth(pooled, ITERS)
        unpooled_growth = _peak_growth(unpooled, 20)
    finally:
        tracemalloc.stop()
    s = pool.stats()
    return pooled_growth, unpooled_growth, s.misses, s.hits


def test_steady_state_allocates_no_large_buffers() -> None:
    pooled_growth, unpooled_growth, misses, hits = run_isolated(_pooled_and_unpooled_growth)
    score_bytes = N * 4
    # What remains is a few KB of fixed-size sort scratch for the k winners, not N-sized.
    assert pooled_growth < score_bytes / 4, pooled_growth
    assert unpooled_growth >= score_bytes, unpooled_growth
    assert misses <= 3 and hits >= ITERS  # every steady-state rent was a hit
