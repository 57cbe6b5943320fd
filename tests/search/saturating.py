"""A numpy model of the u8 x s8 gemm kernels of x86 CPUs without VNNI: VPMADDUBSW adds
each pair of adjacent u8 x s8 products into a saturating int16, VPMADDWD adds pairs of
those into int32, and the zero point is taken off at the end. It lets any machine run
the compressed search on an engine that goes wrong the way those CPUs do."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import numpy as np

from shared.search import int8_scan

INT16 = (-(2**15), 2**15 - 1)


def saturating_dots(codes: np.ndarray, code_sum: np.ndarray, u: np.ndarray) -> np.ndarray:
    n, d = codes.shape
    a = codes.astype(np.int32)
    if d % 2:
        a = np.pad(a, ((0, 0), (0, 1)))
    out = np.empty((n, len(u)), np.int64)
    for j, query in enumerate(u.astype(np.int32)):
        b = np.pad(query, (0, d % 2))
        products = a * b
        pairs = np.clip(products[:, 0::2] + products[:, 1::2], *INT16)
        out[:, j] = pairs.sum(axis=1) - int8_scan.CENTER * int(query.sum())
    return out.astype(np.int32)


#: With 8-bit queries the model saturates, as the real kernels do; with 7-bit ones it
#: cannot (2 x 254 x 63 <= 32,767).
SATURATING = int8_scan.Engine(
    "saturating-u8s8", 127, 66_571, saturating_dots, by_construction=False
)
SATURATING_7BIT = int8_scan.Engine("saturating-u8s8-7bit", 63, 134_200, saturating_dots)


@functools.cache
def selection(use: str, engines: tuple[int8_scan.Engine, ...]) -> int8_scan.Selection:
    """What a process would select from these candidates at start, checks and all."""
    return int8_scan.select(use, engines)


@contextlib.contextmanager
def candidates(
    one: tuple[int8_scan.Engine, ...] | None = None,
    batch: tuple[int8_scan.Engine, ...] | None = None,
) -> Iterator[None]:
    """Serve from the engines selected among these candidates; the process's own
    selection comes back afterwards."""
    chosen = {use: engines for use, engines in (("one", one), ("batch", batch)) if engines}
    saved = {use: int8_scan._selected.get(use) for use in chosen}
    try:
        for use, engines in chosen.items():
            int8_scan._selected[use] = selection(use, engines)
        yield
    finally:
        for use, before in saved.items():
            if before is None:
                int8_scan._selected.pop(use, None)
            else:
                int8_scan._selected[use] = before


def saturating_set(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose codes sit at the ends of their range in long runs, and queries whose
    8-bit codes do too: where adjacent products saturate an int16."""
    d = 64
    signs = rng.choice([-1.0, 1.0], (4000, d))
    runs = np.repeat(rng.choice([-1.0, 1.0], (4000, d // 8)), 8, axis=1)
    m = np.where(rng.random((4000, 1)) < 0.5, signs, runs) * rng.uniform(0.9, 1.0, (4000, d))
    m = m.astype(np.float32)
    queries = np.repeat(rng.choice([-1.0, 1.0], (12, d // 4)), 4, axis=1)
    queries = (queries * rng.uniform(0.5, 1.0, (12, d))).astype(np.float32)
    return m, queries
