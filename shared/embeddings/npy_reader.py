"""Read a 2-D float ``.npy`` matrix row block by row block from a stream of byte chunks.

A batch file in Blob Storage can be larger than the worker's temp disk or memory; this
reads the header, then hands out blocks of rows as the download delivers them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np

from shared.errors import InvalidInputError


class NpyFormatError(InvalidInputError):
    """The bytes are not a 2-D float matrix in .npy format that can be read in order."""

    code = "invalid_npy"


class _ChunkStream(io.RawIOBase):
    """A read-only file over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(target).cast("B")
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = memoryview(chunk)
        n = min(len(view), len(self._buffer))
        view[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class NpyRows:
    """``shape`` and ``dtype`` from the header; ``blocks(rows)`` yields float matrices."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._file = io.BufferedReader(_ChunkStream(chunks), buffer_size=1 << 20)
        try:
            version = np.lib.format.read_magic(self._file)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(self._file)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(self._file)
            else:
                raise NpyFormatError(f".npy format version {version} is not supported")
        except ValueError as exc:
            raise NpyFormatError(f"not a readable .npy file: {exc}") from exc
        shape, fortran_order, dtype = header
        if len(shape) != 2 or dtype.kind != "f":
            raise NpyFormatError(
                f"expected a 2-D float matrix, got {dtype} with shape {list(shape)}"
            )
        if fortran_order and shape[0] > 1 and shape[1] > 1:
            raise NpyFormatError("the matrix is in Fortran order; save it in C order")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype: np.dtype = dtype

    def blocks(self, rows: int) -> Iterator[np.ndarray]:
        """Blocks of up to ``rows`` rows, in order; NpyFormatError if the data ends early."""
        n, d = self.shape
        row_bytes = d * self.dtype.itemsize
        for start in range(0, n, rows):
            count = min(rows, n - start)
            data = self._file.read(count * row_bytes)
            if len(data) != count * row_bytes:
                raise NpyFormatError(
                    f"the data ends after {start + len(data) // max(row_bytes, 1)} of {n} rows"
                )
            yield np.frombuffer(data, dtype=self.dtype).reshape(count, d)
