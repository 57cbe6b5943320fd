"""Reading .npy matrices block by block from byte chunks, as a download delivers them."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest

from shared.embeddings.npy_reader import NpyFormatError, NpyRows


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
