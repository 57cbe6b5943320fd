"""Exact (brute-force) vector search, the numpy core of ``sp_ExactVectorSearch``.

Scores every stored row against the query with BLAS and keeps the best ``top_k``:

* ``cosine``: distance = 1 - cos, similarity = cos (rows and query normalised; a zero
  vector has cosine 0 with everything, as in the scalar functions);
* ``euclidean``: distance = L2, similarity = 1 / (1 + distance) -- a monotone map of
  [0, inf) onto (0, 1] that needs no knowledge of the data's scale, so scores of different
  queries stay comparable;
* ``dot``: distance = -dot, similarity = dot (larger is more similar; "distance" keeps the
  rule that smaller distance is better).

Work done once at load lives in ``SearchMatrix`` (normalised copy for cosine, squared norms
for euclidean), which the caller keeps. A single query is one gemv into a pooled score
buffer, then ``kernels.top_k``. A batch runs gemm over row blocks, keeps a running top-k per
query and only looks at block entries above the current k-th best, so temporaries stay at
block size even for millions of rows. The float32 winners (with a margin) are re-scored in
float64 and ordered by score then row index, so results match a float64 brute-force
ranking and ties are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import kernels
from .errors import DimensionMismatchError, VectorFormatError
from .pool import BufferPool, default_pool

Metric = Literal["cosine", "euclidean", "dot"]
METRICS: tuple[Metric, ...] = ("cosine", "euclidean", "dot")
#: Bytes of one block of batch scores (queries x rows x 4).
BLOCK_BYTES = 16 * 1024 * 1024
#: Extra float32 candidates re-scored in float64 beyond top_k.
RERANK_MARGIN = 16
#: Columns of the first block whose k-th best seeds the per-query threshold.
SEED_COLUMNS = 4096


@dataclass(frozen=True)
class SearchMatrix:
    """Stored vectors prepared for one metric (see ``prepare``).

    Kept column-major: ``columns`` is (d, n) C-contiguous. A single query is then
    ``q @ columns``, a streaming axpy-shaped gemv that reads memory about a third
    faster than the row-major dot-per-row gemv on 384-wide rows, and a batch is
    ``Q @ columns[:, block]``, the gemm shape BLAS runs best here.
    """

    metric: Metric
    columns: np.ndarray
    sq_norms: np.ndarray | None = None

    @property
    def vectors(self) -> np.ndarray:
        """The rows, (n, d): a transposed view, no copy."""
        return self.columns.T

    @property
    def rows(self) -> int:
        return int(self.columns.shape[1])

    @property
    def dim(self) -> int:
        return int(self.columns.shape[0])


@dataclass(frozen=True)
class SearchResult:
    """One query's hits, best first: row indices, distances and similarities (float64)."""

    indices: np.ndarray
    distances: np.ndarray
    similarities: np.ndarray


def prepare(
    vectors: np.ndarray,
    metric: Metric,
    *,
    sq_norms: np.ndarray | None = None,
    normalized: bool = False,
    copy: bool = True,
) -> SearchMatrix:
    """Do the per-matrix work once: normalise rows (cosine) or square the norms
    (euclidean), and lay the matrix out column-major for the scan.

    ``normalized=True`` says cosine rows are already unit length; ``copy=False`` lets
    cosine normalise the caller's rows in place before the column-major copy.
    """
    if metric not in METRICS:
        raise VectorFormatError("metric", f"unknown metric {metric!r}; use one of {METRICS}")
    m = np.asarray(vectors, dtype=np.float32)
    if m.ndim != 2:
        raise VectorFormatError("vectors", f"expected a matrix (2-D), got shape {m.shape}")
    if metric == "cosine" and not normalized:
        m = np.ascontiguousarray(m)
        m = kernels.normalize(m, out=None if copy else m)
    if metric == "euclidean" and sq_norms is None:
        sq_norms = kernels.squared_norms(np.ascontiguousarray(m))
    return SearchMatrix(metric, np.ascontiguousarray(m.T), sq_norms)


def _check(matrix: SearchMatrix, queries: np.ndarray, top_k: int) -> None:
    if queries.shape[-1] != matrix.dim:
        raise DimensionMismatchError.between("query", queries.shape[-1], "vectors", matrix.dim)
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise VectorFormatError("top_k", f"must be a positive integer, got {top_k!r}")


def _candidates(matrix: SearchMatrix, top_k: int) -> int:
    return min(matrix.rows, top_k + max(RERANK_MARGIN, top_k))


def _query_side(matrix: SearchMatrix, queries: np.ndarray) -> np.ndarray:
    """Queries as the gemm sees them: unit length for cosine."""
    q = np.asarray(queries, dtype=np.float32)
    return kernels.normalize(q) if matrix.metric == "cosine" else q


def _to_scores(matrix: SearchMatrix, scores: np.ndarray, start: int, stop: int) -> None:
    """Turn raw dot products into 'larger is better' scores in place."""
    if matrix.metric == "euclidean":
        assert matrix.sq_norms is not None
        scores *= np.float32(2.0)
        scores -= matrix.sq_norms[start:stop]


def _finish(
    matrix: SearchMatrix, query: np.ndarray, cand: np.ndarray, top_k: int, pool: BufferPool
) -> SearchResult:
    """Re-score candidate rows in float64 (pooled copies) and order by (score, row index)."""
    q = np.asarray(query, dtype=np.float64)
    shape = (cand.size, matrix.dim)
    with (
        pool.rent((matrix.dim, cand.size), np.float32) as cols32,
        pool.rent(shape, np.float64) as x,
    ):
        # Gather the candidates' columns ("raise" would buffer a copy of the whole matrix).
        np.take(matrix.columns, cand, axis=1, out=cols32, mode="clip")
        np.copyto(x, cols32.T)
        if matrix.metric == "cosine":
            denom = np.sqrt(np.einsum("ij,ij->i", x, x)) * np.linalg.norm(q)
            dots = x @ q
            sim = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
            key, dist = -sim, 1.0 - sim
        elif matrix.metric == "dot":
            sim = x @ q
            key, dist = -sim, -sim
        else:
            x -= q
            dist = np.sqrt(np.einsum("ij,ij->i", x, x))
            key, sim = dist, 1.0 / (1.0 + dist)
    order = np.lexsort((cand, key))[:top_k]
    return SearchResult(cand[order].astype(np.int64), dist[order], sim[order])


def _finish_batch(
    matrix: SearchMatrix, queries: np.ndarray, cands: list[np.ndarray], top_k: int, pool: BufferPool
) -> list[SearchResult]:
    """``_finish`` for every query at once: one gather of the union of candidate columns
    (sorted, so reads walk memory forward), then float64 scoring without a Python loop
    per query. The same ordering rule: score, then row index."""
    sizes = {c.size for c in cands}
    if len(sizes) != 1 or not cands[0].size:
        return [_finish(matrix, q, c, top_k, pool) for q, c in zip(queries, cands, strict=True)]
    nq, keep = len(cands), sizes.pop()
    cand = np.concatenate(cands)
    unique, inverse = np.unique(cand, return_inverse=True)
    rows = matrix.columns[:, unique].T.astype(np.float64)  # fancy indexing beats np.take here
    cand = cand.reshape(nq, keep)
    q = np.asarray(queries, dtype=np.float64)
    # One float64 gemm of the distinct candidates against every query, then each query
    # picks its own candidates' entries.
    at = (inverse.reshape(nq, keep), np.arange(nq)[:, None])
    dots = (rows @ q.T)[at]
    if matrix.metric == "dot":
        sim = dots
        key, dist = -sim, -sim
    else:
        row_sq = np.einsum("ij,ij->i", rows, rows)[at[0]]
        q_sq = np.einsum("ij,ij->i", q, q)[:, None]
        if matrix.metric == "cosine":
            denom = np.sqrt(row_sq * q_sq)
            sim = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
            key, dist = -sim, 1.0 - sim
        else:
            dist = np.sqrt(np.maximum(row_sq + q_sq - 2.0 * dots, 0.0))
            key, sim = dist, 1.0 / (1.0 + dist)
    by_row = np.argsort(cand, axis=1, kind="stable")
    by_key = np.argsort(np.take_along_axis(key, by_row, axis=1), axis=1, kind="stable")
    order = np.take_along_axis(by_row, by_key, axis=1)[:, :top_k]
    pick = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    idx, dists, sims = pick(cand).astype(np.int64), pick(dist), pick(sim)
    return [SearchResult(idx[i], dists[i], sims[i]) for i in range(nq)]


def search(
    matrix: SearchMatrix, query: np.ndarray, top_k: int, *, pool: BufferPool | None = None
) -> SearchResult:
    """The ``top_k`` rows nearest to one query: one gemv + top-k, pooled buffers only."""
    q = np.asarray(query, dtype=np.float32)
    if q.ndim != 1:
        raise VectorFormatError("query", f"expected a vector (1-D), got shape {q.shape}")
    _check(matrix, q, top_k)
    pool = pool or default_pool()
    qs = _query_side(matrix, q)
    with pool.rent(matrix.rows, np.float32) as scores:
        np.matmul(qs, matrix.columns, out=scores)
        _to_scores(matrix, scores, 0, matrix.rows)
        cand, _ = kernels.top_k(scores, _candidates(matrix, top_k), pool=pool)
    return _finish(matrix, q, cand, top_k, pool)


class _RunningTopK:
    """Per-query best candidates as flat (query, row, score) arrays, plus each k-th score."""

    def __init__(self, nq: int, keep: int) -> None:
        self.nq, self.keep = nq, keep
        self.q = np.empty(0, np.int64)
        self.row = np.empty(0, np.int64)
        self.score = np.empty(0, np.float32)
        self.kth = np.full(nq, -np.inf, np.float32)

    def merge(self, q: np.ndarray, row: np.ndarray, score: np.ndarray) -> None:
        qs = np.concatenate([self.q, q])
        rows = np.concatenate([self.row, row])
        scores = np.concatenate([self.score, score])
        order = np.lexsort((rows, -scores, qs))
        qs, rows, scores = qs[order], rows[order], scores[order]
        starts = np.searchsorted(qs, np.arange(self.nq))
        rank = np.arange(qs.size) - starts[qs]
        keep = rank < self.keep
        self.q, self.row, self.score = qs[keep], rows[keep], scores[keep]
        counts = np.bincount(self.q, minlength=self.nq)
        starts = np.searchsorted(self.q, np.arange(self.nq))
        full = counts >= self.keep
        self.kth[full] = self.score[starts[full] + self.keep - 1]

    def rows_of(self, qi: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.q, [qi, qi + 1])
        return self.row[lo:hi]


def search_batch(
    matrix: SearchMatrix,
    queries: np.ndarray,
    top_k: int,
    *,
    pool: BufferPool | None = None,
    block_rows: int | None = None,
) -> list[SearchResult]:
    """``search`` for many queries at once: gemm per row block, running top-k per query."""
    qm = np.asarray(queries, dtype=np.float32)
    if qm.ndim != 2:
        raise VectorFormatError("queries", f"expected a matrix (2-D), got shape {qm.shape}")
    _check(matrix, qm, top_k)
    nq, n = qm.shape[0], matrix.rows
    if nq == 0:
        return []
    pool = pool or default_pool()
    keep = _candidates(matrix, top_k)
    block = max(keep, block_rows or BLOCK_BYTES // (4 * nq))
    block = min(block, n)
    qs = np.ascontiguousarray(_query_side(matrix, qm))
    best = _RunningTopK(nq, keep)
    with (
        pool.rent(nq * block, np.float32) as score_buf,
        pool.rent(nq * block, np.bool_) as mask_buf,
    ):
        for start in range(0, n, block):
            stop = min(start + block, n)
            width = stop - start
            scores = score_buf[: nq * width].reshape(nq, width)
            mask = mask_buf[: nq * width].reshape(nq, width)
            np.matmul(qs, matrix.columns[:, start:stop], out=scores)
            _to_scores(matrix, scores, start, stop)
            if np.isneginf(best.kth).any():
                _block_threshold_mask(scores, best.kth, min(keep, width), mask, pool)
            else:
                np.greater(scores, best.kth[:, None], out=mask)
            qi, ri = _nonzero(mask)
            best.merge(qi, ri + start, scores[qi, ri])
    return _finish_batch(matrix, qm, [best.rows_of(i) for i in range(nq)], top_k, pool)


def _block_threshold_mask(
    scores: np.ndarray, kth: np.ndarray, keep: int, mask: np.ndarray, pool: BufferPool
) -> None:
    """Entries at least as good as each query's ``keep``-th best among the block's first
    columns: a valid bound (those columns alone hold ``keep`` such entries) that costs a
    partition of a few thousand columns instead of the whole block."""
    width = min(scores.shape[1], max(4 * keep, SEED_COLUMNS))
    with pool.rent(scores.shape[0] * width, np.float32) as buf:
        neg = buf.reshape(scores.shape[0], width)
        np.negative(scores[:, :width], out=neg)
        neg.partition(keep - 1, axis=1)
        thresh = np.maximum(-neg[:, keep - 1], kth)
    np.greater_equal(scores, thresh[:, None], out=mask)


def _nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` for a sparse C-contiguous bool matrix: scan 8 bytes at a time."""
    rows, cols = mask.shape
    flat = mask.reshape(-1)
    words = flat.size // 8
    hits = np.flatnonzero(flat[: words * 8].view(np.uint64))
    pos = (hits[:, None] * 8 + np.arange(8)).reshape(-1)
    pos = pos[flat[pos]]
    tail = np.flatnonzero(flat[words * 8 :]) + words * 8
    pos = np.concatenate([pos, tail])
    return pos // cols, pos % cols
