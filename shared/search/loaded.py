"""One search set held in memory: float32 columns, or int8 codes with mapped rows."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from shared.search import exact as core
from shared.search import quantized
from shared.vectors.pool import BufferPool

if TYPE_CHECKING:
    from shared.search.metadata_filter import MetadataColumns, MetadataFilter

#: A float32 set scores only the matching rows (gathered block by block) when at most
#: this share of its rows match; above, one scan of every row with the other rows'
#: scores masked out. Rows are stored row-major, so a gathered row is one contiguous
#: read: on 200k and 1M x 384 rows, one query's gather at 1/8 took ~0.4x the masked
#: scan and at 1/4 as long; a batch of 16 at 1/8 ~0.4-0.7x (docs/search.md, "Filtered
#: scans").
GATHER_SHARE = 1 / 8


# A ValueError, not a kind of shared.errors: it is a signal inside the search package,
# caught here (the cache gives every set read from a snapshot a fallback to SQL) and in
# snapshots.py (with the ValueErrors numpy and json raise on the same corrupt file).
# No caller ever sees it, so it carries no HTTP status.
class SnapshotRowsError(ValueError):
    """Rows read from a snapshot disagree with its codes or CRC: the set must be
    loaded from SQL instead."""


def metadata_columns(rows: list[dict | None]) -> MetadataColumns | None:
    """A set's metadata held column-wise, or None when no row has any (columns of empty
    rows are then built only if a filtered search asks for them)."""
    if all(m is None for m in rows):
        return None
    from shared.search.metadata_filter import MetadataColumns

    return MetadataColumns.build(rows)


_NO_HITS = core.SearchResult(np.empty(0, np.int64), np.empty(0), np.empty(0))


@dataclass
class LoadedSet:
    model_id: str
    embedding_type: str
    version: int
    ids: list[str]
    base: core.SearchMatrix | None  # float32 sets: the stored values, for the scan
    compressed: quantized.QuantizedRows | None = None  # large sets: int8 codes + bounds
    #: The rows' metadata, column-wise (filters run on it; None: no row has any).
    metadata: MetadataColumns | None = None
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
        self,
        queries: np.ndarray,
        top_k: int,
        metric: str,
        pool: BufferPool,
        where: MetadataFilter | None = None,
    ) -> list[core.SearchResult]:
        """Top-k per query row by whichever engine holds this set (same results); with
        ``where``, the top ``min(k, matches)`` among the rows whose metadata it matches."""
        mask = None if where is None else where.mask(self.metadata_columns())
        if mask is not None:
            matches = int(np.count_nonzero(mask))
            if matches == 0:
                return [_NO_HITS] * queries.shape[0]
            if matches == self.rows:
                mask = None
        if self.compressed is not None:
            m = metric  # validated by the caller's schema; the engine checks it too
            qr = self.compressed
            try:
                if queries.shape[0] == 1:
                    return [quantized.search(qr, queries[0], top_k, m, pool=pool, mask=mask)]  # type: ignore[arg-type]
                return quantized.search_batch(qr, queries, top_k, m, pool=pool, mask=mask)  # type: ignore[arg-type]
            except SnapshotRowsError:
                if self.fallback is None:
                    raise
                # The set from SQL matches the filter again: its rows may differ.
                return self.fallback().search(queries, top_k, metric, pool, where)
        if mask is not None and np.count_nonzero(mask) <= GATHER_SHARE * self.rows:
            return self._search_gathered(queries, top_k, metric, pool, np.flatnonzero(mask))
        exclude = None if mask is None else ~mask
        matrix = self.prepared(metric)
        if queries.shape[0] == 1:
            return [core.search(matrix, queries[0], top_k, pool=pool, exclude=exclude)]
        return core.search_batch(matrix, queries, top_k, pool=pool, exclude=exclude)

    def _search_gathered(
        self, queries: np.ndarray, top_k: int, metric: str, pool: BufferPool, sel: np.ndarray
    ) -> list[core.SearchResult]:
        """Score only the rows ``sel`` (sorted). One query gathers them block by block
        from the prepared matrix; a batch searches a matrix of just them and maps its row
        numbers back. Their order is kept, so ties still break by row."""
        assert self.base is not None
        if queries.shape[0] == 1:
            matrix = self.prepared(metric)
            return [core.search_rows(matrix, queries[0], top_k, sel, pool=pool)]
        rows = np.take(self.base.vectors, sel, axis=0)  # (m, d), C-contiguous
        sub = core.prepare(rows, metric)  # type: ignore[arg-type]
        found = core.search_batch(sub, queries, top_k, pool=pool)
        return [core.SearchResult(sel[r.indices], r.distances, r.similarities) for r in found]

    def metadata_columns(self) -> MetadataColumns:
        """The rows' metadata; a set loaded without any gets columns of empty rows
        (built once, on the first filtered search)."""
        if self.metadata is None:
            from shared.search.metadata_filter import MetadataColumns

            with self._lock:
                if self.metadata is None:
                    self.metadata = MetadataColumns.build([None] * self.rows)
        return self.metadata

    def metadata_of(self, row: int) -> dict | None:
        """Row ``row``'s metadata (None when it has none)."""
        return None if self.metadata is None else self.metadata.row(row)

    @property
    def nbytes(self) -> int:
        """Memory held: the stored rows plus what each prepared metric added (a
        compressed set: its codes and per-row bounds; the mapped rows are not resident)."""
        meta = 0 if self.metadata is None else self.metadata.nbytes
        if self.compressed is not None:
            return self.compressed.nbytes + meta
        assert self.base is not None
        extra = 0
        for prepared in list(self._prepared.values()):
            if prepared.vectors is not self.base.vectors:
                extra += prepared.vectors.nbytes
            if prepared.sq_norms is not None:
                extra += prepared.sq_norms.nbytes
        return self.base.vectors.nbytes + extra + meta

    def prepared(self, metric: str) -> core.SearchMatrix:
        """The matrix prepared for `metric`, built once per loaded version.

        dot and euclidean share the stored rows (euclidean adds squared norms);
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
        rows = self.base.vectors
        if metric == "euclidean":
            sq_norms = np.einsum("ij,ij->i", rows, rows, dtype=np.float32)
            return core.SearchMatrix("euclidean", rows, sq_norms)
        # cosine: a normalised copy for the scan; the float64 re-score reads the base rows.
        return core.prepare(self.base.vectors, metric)  # type: ignore[arg-type]
