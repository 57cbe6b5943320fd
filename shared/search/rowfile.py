"""The float32 rows of a compressed set, kept in a memory-mapped file instead of the heap.

Compressed search reads these rows only to re-score a few candidates per query, so they
need not be resident: the kernel pages in what is read and may drop it again. The file
is unlinked as soon as it is mapped; the mapping keeps it alive, so nothing is left on
disk when the set is dropped or the process ends (no clean-up to forget in /tmp).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np


def map_rows(directory: Path, rows: int, dim: int, fill: Callable[[IO[bytes]], None]) -> np.ndarray:
    """A read-only (rows, dim) float32 map of the bytes ``fill`` writes to a new file
    under ``directory``."""
    if rows == 0 or dim == 0:
        return np.zeros((rows, dim), np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="rows-", suffix=".f32", dir=directory)
    try:
        with os.fdopen(fd, "w+b") as f:
            fill(f)
            f.flush()
            size = os.fstat(f.fileno()).st_size
        if size != rows * dim * 4:
            raise ValueError(f"expected {rows * dim * 4} bytes of rows, got {size}")
        return np.memmap(name, dtype="<f4", mode="r", shape=(rows, dim))
    finally:
        Path(name).unlink(missing_ok=True)


def write_rows(directory: Path, rows: np.ndarray) -> np.ndarray:
    """``rows`` copied into a mapped file (see ``map_rows``)."""
    data = np.ascontiguousarray(rows, dtype="<f4")
    return map_rows(directory, data.shape[0], data.shape[1], lambda f: f.write(memoryview(data)))
