"""Large batches split by rows across cores give exactly the single-threaded result."""

import threading

import numpy as np
import pytest

from shared.vectors import kernels

ROWS, DIM = 4000, 384  # 1.5M elements: above PARALLEL_MIN_ELEMENTS


@pytest.fixture
def big() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    a = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    b = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    return a, b, b[7].copy()


def test_the_batch_is_large_enough_to_split() -> None:
    assert ROWS * DIM >= kernels.PARALLEL_MIN_ELEMENTS


def test_split_results_equal_plain_numpy(big) -> None:
    a, b, v = big
    assert np.array_equal(kernels.add(a, b), a + b)
    assert np.array_equal(kernels.add(a, v), a + v)
    assert np.array_equal(kernels.subtract(v, a), v - a)
    assert np.array_equal(kernels.scale(a, 1.5), a * np.float32(1.5))
    want = b - a
    want *= np.float32(0.25)
    want += a
    assert np.array_equal(kernels.lerp(a, b, 0.25), want)
    assert np.allclose(kernels.norm(a), np.linalg.norm(a, axis=1), rtol=1e-6)
    unit = kernels.normalize(a)
    assert np.allclose(unit, a / np.linalg.norm(a, axis=1, keepdims=True), rtol=1e-6)
    top = a.max(axis=1, keepdims=True)
    e = np.exp(a - top)
    assert np.allclose(kernels.softmax(a), e / e.sum(axis=1, keepdims=True), rtol=1e-6)


def test_split_writes_into_out_and_runs_on_worker_threads(big, monkeypatch) -> None:
    a, b, _ = big
    seen: set[str] = set()
    real_add = np.add

    def spy(*args, **kwargs):
        seen.add(threading.current_thread().name)
        return real_add(*args, **kwargs)

    monkeypatch.setattr(np, "add", spy)
    out = np.empty_like(a)
    got = kernels._binary(np.add, a, b, out)
    assert got is out and np.array_equal(out, real_add(a, b))
    if kernels._WORKERS > 1:
        assert all(name.startswith("vector-kernels") for name in seen)
        assert len(seen) >= 1


def test_small_batches_stay_on_the_calling_thread() -> None:
    a = np.ones((10, 4), np.float32)
    assert kernels._by_rows(10, a.size, a.shape, None, lambda p, o: None) is None
