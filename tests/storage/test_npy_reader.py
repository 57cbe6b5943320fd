"""Reading .npy matrices block by block from byte chunks, as a download delivers them."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from shared.embeddings.npy_reader import NpyFormatError, NpyRows
from shared.storage.prefetch import prefetch


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _npy(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array)
    else:
        np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_blocks_rebuild_the_matrix_whatever_the_chunk_boundaries(dtype, chunk: int) -> None:
    m = np.random.default_rng(1).standard_normal((1003, 24)).astype(dtype)
    rows = NpyRows(_chunks(_npy(m), chunk))
    assert rows.shape == (1003, 24) and rows.dtype == np.dtype(dtype)
    blocks = list(rows.blocks(100))
    assert [len(b) for b in blocks] == [100] * 10 + [3]
    assert np.array_equal(np.concatenate(blocks), m)


def test_format_version_2_reads_too() -> None:
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(np.concatenate(list(NpyRows(_chunks(_npy(m, (2, 0)), 5)).blocks(2))), m)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_npy(np.ones(5, np.float32)), "2-D float matrix"),
        (_npy(np.ones((2, 3), np.int64)), "2-D float matrix"),
        (_npy(np.asfortranarray(np.ones((4, 3), np.float32))), "Fortran order"),
        (b"not an npy file at all", "not a readable .npy"),
    ],
)
def test_what_cannot_be_read_in_order_is_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(NpyFormatError, match=reason):
        NpyRows(_chunks(data, 64))


def test_truncated_data_says_how_far_it_got() -> None:
    data = _npy(np.ones((10, 4), np.float32))
    rows = NpyRows(_chunks(data[: -4 * 4 * 3 - 2], 16))  # 6 whole rows and part of one
    with pytest.raises(NpyFormatError, match="ends after 6 of 10 rows"):
        list(rows.blocks(3))


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
