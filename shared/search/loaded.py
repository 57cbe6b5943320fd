"""One search set held in memory: float32 columns, or int8 codes with mapped rows."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from shared.search import exact as core
from shared.search import quantized
from shared.vectors.pool import BufferPool


# A ValueError, not a kind of shared.errors: it is a signal inside the search package,
# caught here (the cache gives every set read from a snapshot a fallback to SQL) and in
# snapshots.py (with the ValueErrors numpy and json raise on the same corrupt file).
# No caller ever sees it, so it carries no HTTP status.
class SnapshotRowsError(ValueError):
    """Rows read from a snapshot disagree with its codes or CRC: the set must be
    loaded from SQL instead."""


@dataclass
class LoadedSet:
    model_id: str
    embedding_type: str
    version: int
    ids: list[str]
    base: core.SearchMatrix | None  # float32 sets: the stored values, for the scan
    compressed: quantized.QuantizedRows | None = None  # large sets: int8 codes + bounds
    #: For a set from a snapshot: loads it from SQL instead, should its rows prove bad.
    fallback: Callable[[], LoadedSet] | None = None
    _prepared: dict[str, core.SearchMatrix] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def rows(self) -> int:
        if self.compressed is not None:
            return self.compressed.count
        assert self.base is not None
        return self.base.rows

    def search(
        self, queries: np.ndarray, top_k: int, metric: str, pool: BufferPool
    ) -> list[core.SearchResult]:
        """Top-k per query row by whichever engine holds this set (same results)."""
        if self.compressed is not None:
            m = metric  # validated by the caller's schema; the engine checks it too
            try:
                if queries.shape[0] == 1:
                    return [quantized.search(self.compressed, queries[0], top_k, m, pool=pool)]  # type: ignore[arg-type]
                return quantized.search_batch(self.compressed, queries, top_k, m, pool=pool)  # type: ignore[arg-type]
            except SnapshotRowsError:
                if self.fallback is None:
                    raise
                return self.fallback().search(queries, top_k, metric, pool)
        matrix = self.prepared(metric)
        if queries.shape[0] == 1:
            return [core.search(matrix, queries[0], top_k, pool=pool)]
        return core.search_batch(matrix, queries, top_k, pool=pool)

    @property
    def nbytes(self) -> int:
        """Memory held: the stored columns plus what each prepared metric added (a
        compressed set: its codes and per-row bounds; the mapped rows are not resident)."""
        if self.compressed is not None:
            return self.compressed.nbytes
        assert self.base is not None
        extra = 0
        for prepared in list(self._prepared.values()):
            if prepared.columns is not self.base.columns:
                extra += prepared.columns.nbytes
            if prepared.sq_norms is not None:
                extra += prepared.sq_norms.nbytes
        return self.base.columns.nbytes + extra

    def prepared(self, metric: str) -> core.SearchMatrix:
        """The matrix prepared for `metric`, built once per loaded version.

        dot and euclidean share the stored columns (euclidean adds squared norms);
        cosine keeps one normalised copy.
        """
        assert self.base is not None
        if metric == "dot":
            return self.base
        got = self._prepared.get(metric)
        if got is None:
            with self._lock:
                got = self._prepared.get(metric)
                if got is None:
                    got = self._prepare(metric)
                    self._prepared[metric] = got
        return got

    def _prepare(self, metric: str) -> core.SearchMatrix:
        assert self.base is not None
        cols = self.base.columns
        if metric == "euclidean":
            sq_norms = np.einsum("ij,ij->j", cols, cols, dtype=np.float32)
            return core.SearchMatrix("euclidean", cols, sq_norms)
        # cosine: a normalised copy for the scan; the float64 re-score reads the base rows.
        return core.prepare(self.base.vectors, metric)  # type: ignore[arg-type]
