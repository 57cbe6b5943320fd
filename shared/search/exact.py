"""Exact (brute-force) vector search, the numpy core of POST /api/search.

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
buffer, then ``kernels.top_k``. A batch runs gemm over row blocks (doubling from a small
first one), keeps a running top-k per query and only looks at block entries above the
current k-th best, so temporaries stay at block size even for millions of rows.

Exactness: a float32 score differs from the float64 score of the same stored values by
at most ``error_bound`` (the rounding bound of the dot product, doubled). Every row whose
float32 score is within twice that bound of the k-th best float32 score is re-scored in
float64, and those are ordered by score, then row index. So results are the float64
brute-force ranking, ties included, even among near-duplicates float32 cannot separate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from shared.search.kernel_sessions import kernel_session
from shared.settings import usable_cores
from shared.vectors import kernels
from shared.vectors.errors import DimensionMismatchError, VectorFormatError
from shared.vectors.pool import BufferPool, default_pool

if TYPE_CHECKING:
    from onnx import GraphProto

Metric = Literal["cosine", "euclidean", "dot"]
METRICS: tuple[Metric, ...] = ("cosine", "euclidean", "dot")
#: Bytes of one block of batch scores (queries x rows x 4).
BLOCK_BYTES = 16 * 1024 * 1024
#: Extra float32 best kept beyond top_k by the single-query selection, so the band of
#: near-ties usually fits in one selection.
RERANK_MARGIN = 16
#: Candidates re-scored in float64 per step (bounds the float64 copy).
RESCORE_CHUNK = 8192
#: A band of this many rows that fills a quarter of its span is read as a dense span.
DENSE_FROM = 2048
#: A one-query search of a set of at most this many values (rows x dimension) scores
#: every row in float64 straight away: below it the float32 scan, its band and the
#: gather for the re-score cost more (50 x 384 rows: 59 us against 213; even at
#: 400 x 384 and 1,600 x 32).
DIRECT_VALUES = 1 << 16
#: A batch on such a set is scored directly too while it has at most this many (query,
#: row) pairs: each query sorts every row, where the batch's gemm and band cost about
#: 1 ms whatever the queries (8 x 50 rows: 0.41 ms against 0.93; 64 x 50: 2.8 against
#: 2.2; 8 x 1,000 rows of 32: 1.3 against 1.0).
DIRECT_PAIRS = 2048
#: A batch query whose band of near-ties outgrows this many rows (degenerate data, such
#: as thousands of identical vectors) finishes through the single-query path instead.
BAND_CAP = 4096
_U32 = 2.0**-24  # float32 unit roundoff
_TINY32 = 2.0**-149  # float32's smallest subnormal
#: Rows gathered and scored per step by ``search_rows`` (a 6 MiB buffer at d=384).
GATHER_BLOCK = 4096
#: Threads of a batch's block gemm (the single-query gemv is numpy's, on BLAS threads).
GEMM_THREADS = usable_cores()
#: Width of the first row block of a batch.
SEED_COLUMNS = 4096
#: Columns of the first block whose k-th best seeds the per-query threshold.
SEED_SAMPLE = 1024


@dataclass(frozen=True)
class SearchMatrix:
    """Stored vectors prepared for one metric (see ``prepare``).

    Kept row-major: ``vectors`` is (n, d) C-contiguous, one row per stored vector. A
    single query is ``vectors @ q``, one gemv; a batch is ``Q @ vectors[block].T``, a
    gemm per row block; and a row is 4 * d contiguous bytes, so a filter that keeps few
    rows gathers them at memory speed. (A column-major copy streams a single query
    about 15% faster on 384-wide rows, but makes each gathered row cost a cache line per
    dimension: a 1% filter then took as long as the whole scan.)
    """

    metric: Metric
    vectors: np.ndarray
    sq_norms: np.ndarray | None = None
    #: Largest row norm (an upper bound); sizes the float32 error bound.
    max_norm: float | None = None
    #: The stored rows (n, d) as given, when ``vectors`` holds a normalised copy: the
    #: float64 re-score reads these, so cosine is exact for the stored values.
    raw: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.max_norm is None:
            object.__setattr__(self, "max_norm", _max_norm(self))

    @property
    def rows(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


@dataclass(frozen=True)
class SearchResult:
    """One query's hits, best first: row indices, distances and similarities (float64)."""

    indices: np.ndarray
    distances: np.ndarray
    similarities: np.ndarray


def _max_norm(matrix: SearchMatrix) -> float:
    if matrix.rows == 0:
        return 0.0
    if matrix.metric == "cosine":
        return 1.0 + 1e-4  # unit rows, up to their float32 rounding
    sq = matrix.sq_norms
    if sq is None:
        sq = np.einsum("ij,ij->i", matrix.vectors, matrix.vectors, dtype=np.float64)
    return float(np.sqrt(np.max(sq))) * (1 + 1e-4)


def error_bound(matrix: SearchMatrix, query_norms: np.ndarray) -> np.ndarray:
    """Per query: the most a float32 score can differ from the float64 score of the same
    stored values (the textbook bound for a length-d dot product, doubled for margin)."""
    q = np.asarray(query_norms, dtype=np.float64)
    g = 2.0 * (matrix.dim + 4) * _U32
    # Products that underflow to subnormals each lose up to half the smallest subnormal.
    tiny = 2.0 * (matrix.dim + 4) * _TINY32
    big = float(matrix.max_norm or 0.0)
    if matrix.metric == "cosine":
        return np.where(q > 0, 3.0 * g, 0.0)  # the dot, plus both float32 normalisations
    if matrix.metric == "dot":
        return np.where((q > 0) & (big > 0), g * q * big + tiny, 0.0)
    return g * (2.0 * q * big + big * big) + 3.0 * tiny


def prepare(
    vectors: np.ndarray,
    metric: Metric,
    *,
    sq_norms: np.ndarray | None = None,
    normalized: bool = False,
    copy: bool = True,
) -> SearchMatrix:
    """Do the per-matrix work once: normalise rows (cosine) or square the norms
    (euclidean), and hold the rows row-major for the scan.

    Rows that are already C-contiguous float32 are kept by reference, not copied (a
    loaded set's rows are the bytes read for it), so the caller must not change them.
    ``normalized=True`` says cosine rows are already unit length; ``copy=False`` lets
    cosine normalise the caller's rows in place (the float64 re-score then reads the
    normalised rows). Otherwise cosine scans a normalised copy and keeps the given rows
    for the re-score.
    """
    if metric not in METRICS:
        raise VectorFormatError("metric", f"unknown metric {metric!r}; use one of {METRICS}")
    m = np.asarray(vectors, dtype=np.float32)
    if m.ndim != 2:
        raise VectorFormatError("vectors", f"expected a matrix (2-D), got shape {m.shape}")
    m = np.ascontiguousarray(m)
    raw = None
    if metric == "cosine" and not normalized:
        raw = m if copy else None
        m = kernels.normalize(m, out=None if copy else m)
    if metric == "euclidean" and sq_norms is None:
        sq_norms = kernels.squared_norms(m)
    return SearchMatrix(metric, m, sq_norms, raw=raw)


def _check(matrix: SearchMatrix, queries: np.ndarray, top_k: int) -> None:
    if queries.shape[-1] != matrix.dim:
        raise DimensionMismatchError.between("query", queries.shape[-1], "vectors", matrix.dim)
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise VectorFormatError("top_k", f"must be a positive integer, got {top_k!r}")


def _query_side(matrix: SearchMatrix, queries: np.ndarray) -> np.ndarray:
    """Queries as the gemm sees them: unit length for cosine."""
    q = np.asarray(queries, dtype=np.float32)
    return kernels.normalize(q) if matrix.metric == "cosine" else q


def block_dots(queries: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """``out = queries @ rows.T`` in float32 (both C-contiguous, row-major): MLAS's gemm
    through onnxruntime, written straight into ``out``. A float32 dot product in any
    summation order stays within ``error_bound``, so the kernel chosen cannot change a
    result."""
    session = kernel_session("float32_block_dots", _block_dots_graph, GEMM_THREADS)
    binding = session.io_binding()
    binding.bind_cpu_input("Q", queries)
    binding.bind_cpu_input("X", rows)
    binding.bind_output("Y", "cpu", 0, np.float32, out.shape, out.ctypes.data)
    session.run_with_iobinding(binding)


def _block_dots_graph() -> GraphProto:
    from onnx import TensorProto, helper

    return helper.make_graph(
        [helper.make_node("Gemm", ["Q", "X"], ["Y"], transB=1)],
        "float32_block_dots",
        [
            helper.make_tensor_value_info("Q", TensorProto.FLOAT, [None, None]),
            helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, None]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, None])],
    )


def _to_scores(matrix: SearchMatrix, scores: np.ndarray, start: int, stop: int) -> None:
    """Turn raw dot products into 'larger is better' scores in place."""
    if matrix.metric == "euclidean":
        assert matrix.sq_norms is not None
        scores *= np.float32(2.0)
        scores -= matrix.sq_norms[start:stop]


def pair_dots(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``x[i] . q[i]`` in float64 for each row pair, summed in an order that depends only on
    the dimension: a query scored alone and the same query in a batch get the same digits.
    (BLAS's gemv and gemm order their sums differently and would differ in the last one.)
    """
    return np.einsum("ij,ij->i", x, np.ascontiguousarray(q, dtype=np.float64))


def query_dots(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``x[i] . q`` in float64 for each row: ``pair_dots`` for one query, summed the same
    way (numpy's einsum runs the same kernel along each row in both; the tests check it
    digit for digit), without a copy of the query per row."""
    return np.einsum("ij,j->i", x, np.ascontiguousarray(q, dtype=np.float64))


def squared_norm(q: np.ndarray) -> float:
    """``q . q`` in float64, summed as ``pair_dots`` and the batch path sum it."""
    row = np.ascontiguousarray(q, dtype=np.float64).reshape(1, -1)
    return float(np.einsum("ij,ij->i", row, row)[0])


def _rescore(
    matrix: SearchMatrix,
    queries: np.ndarray,
    qi: np.ndarray,
    rows: np.ndarray,
    pool: BufferPool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 (key, distance, similarity) of each (query ``qi[j]``, row ``rows[j]``) pair.

    One gather of the distinct rows (sorted, so reads walk memory forward) into pooled
    buffers, then each pair's float64 score from them."""
    unique, inverse = np.unique(rows, return_inverse=True)
    k, d = unique.size, matrix.dim
    q = np.asarray(queries, dtype=np.float64).reshape(-1, d)
    with pool.rent((k, d), np.float64) as x:
        # take() on a C-contiguous source with mode="clip" writes straight into the
        # buffer; "raise", or a strided source, would first copy the whole matrix.
        source = matrix.vectors if matrix.raw is None else np.ascontiguousarray(matrix.raw)
        with pool.rent((k, d), np.float32) as x32:
            np.take(source, unique, axis=0, out=x32, mode="clip")
            np.copyto(x, x32)
        if matrix.metric == "euclidean":
            # From the differences: |x|^2 + |q|^2 - 2 x.q cancels away the digits
            # that separate rows far from the origin.
            with pool.rent((qi.size, d), np.float64) as diff:
                np.take(x, inverse, axis=0, out=diff, mode="clip")
                diff -= q[0] if len(q) == 1 else q[qi]
                dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
            return dist, dist, 1.0 / (1.0 + dist)
        if len(q) == 1:  # one query: the distinct rows' dots, spread to the pairs
            dots = query_dots(x, q[0])[inverse]
        else:
            with pool.rent((qi.size, d), np.float64) as xs:
                np.take(x, inverse, axis=0, out=xs, mode="clip")
                dots = pair_dots(xs, q[qi])
        if matrix.metric == "dot":
            return -dots, -dots, dots
        row_sq = np.einsum("ij,ij->i", x, x)[inverse]
    denom = np.sqrt(row_sq * np.einsum("ij,ij->i", q, q)[qi])
    sim = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
    return -sim, 1.0 - sim, sim


def _best_per_query(
    nq: int, top_k: int, qi: np.ndarray, rows: np.ndarray, key: np.ndarray
) -> np.ndarray:
    """Positions of each query's ``top_k`` best entries by (key, row), grouped by query."""
    order = np.lexsort((rows, key, qi))
    q_sorted = qi[order]
    first = np.searchsorted(q_sorted, np.arange(nq))
    rank = np.arange(order.size) - first[q_sorted]
    return order[rank < top_k]


def _finish(
    matrix: SearchMatrix, query: np.ndarray, cand: np.ndarray, top_k: int, pool: BufferPool
) -> SearchResult:
    """Re-score a band of candidate rows in float64, a chunk at a time (the band can be
    large on degenerate data), keeping the best ``top_k`` by (score, row index).

    A large band that fills much of its span of rows (thousands of duplicates) is scored
    by reading that span block by block, every row of it: streaming memory beats picking
    scattered rows, and extra rows are harmless (the band only has to contain the
    answer, and the float64 order decides)."""
    q = np.asarray(query, dtype=np.float64)
    first, last = (int(cand.min()), int(cand.max())) if cand.size else (0, -1)
    dense = cand.size >= DENSE_FROM and cand.size * 4 >= last - first + 1
    if dense:
        starts = range(first, last + 1, RESCORE_CHUNK)
        parts = (np.arange(lo, min(lo + RESCORE_CHUNK, last + 1)) for lo in starts)
    else:
        parts = (cand[lo : lo + RESCORE_CHUNK] for lo in range(0, cand.size, RESCORE_CHUNK))
    best_rows = np.empty(0, np.int64)
    best = (np.empty(0), np.empty(0), np.empty(0))
    for part in parts:
        if dense:
            fresh = _rescore_span(matrix, q, int(part[0]), int(part[-1]) + 1)
        else:
            fresh = _rescore(matrix, q, np.zeros(part.size, np.intp), part, pool)
        rows = np.concatenate([best_rows, part])
        scored = tuple(np.concatenate([b, f]) for b, f in zip(best, fresh, strict=True))
        keep = _best_per_query(1, top_k, np.zeros(rows.size, np.intp), rows, scored[0])
        best_rows, best = rows[keep], tuple(a[keep] for a in scored)
    return SearchResult(best_rows.astype(np.int64), best[1], best[2])


def _rescore_span(
    matrix: SearchMatrix, q: np.ndarray, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_rescore`` for one query and every row in ``[lo, hi)``, read as a contiguous
    block in whichever layout the stored rows have."""
    source = matrix.vectors if matrix.raw is None else matrix.raw
    x = source[lo:hi].astype(np.float64, order="C")  # a (rows, d) copy, rows contiguous
    return _scored(x, None, q, matrix.metric, in_place=True)


def _scored(
    x: np.ndarray, row_sq: np.ndarray | None, q: np.ndarray, metric: str, *, in_place: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 (key, distance, similarity) of the float64 rows ``x`` against one query,
    as ``_rescore`` scores them. ``row_sq``: ``x``'s squared norms when already summed
    (cosine); ``in_place``: euclidean may subtract the query from ``x`` itself."""
    if metric == "euclidean":
        diff = np.subtract(x, q, out=x if in_place else None)
        dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return dist, dist, 1.0 / (1.0 + dist)
    dots = query_dots(x, q)
    if metric == "dot":
        return -dots, -dots, dots
    if row_sq is None:
        row_sq = np.einsum("ij,ij->i", x, x)
    denom = np.sqrt(row_sq * squared_norm(q))
    sim = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
    return -sim, 1.0 - sim, sim


def _band(scores: np.ndarray, top_k: int, eps: float, pool: BufferPool) -> np.ndarray:
    """Rows whose float32 score is within ``2 * eps`` of the k-th best: a superset of the
    float64 top-k. Usually found among the first ``top_k + margin`` best; a wider band
    (many near-ties) takes one more pass over the scores."""
    n = scores.size
    keep = min(n, top_k + max(RERANK_MARGIN, top_k))
    idx, vals = kernels.top_k(scores, keep, pool=pool)
    if eps == 0.0 or top_k >= n:
        return idx[:top_k]  # exact float32 scores (a zero query): ties already by row
    floor = _down_to_f32(np.array([float(vals[top_k - 1]) - 2.0 * eps]))[0]
    if keep < n and vals[-1] >= floor:
        with pool.rent(n, np.bool_) as mask:
            np.greater_equal(scores, floor, out=mask)
            return np.flatnonzero(mask)
    return idx[vals >= floor]


def _excluded_top_k(top_k: int, rows: int, exclude: np.ndarray | None) -> int:
    """How many hits a search can return: ``top_k``, or fewer when fewer rows are
    left once ``exclude`` (bool per row, True: never a hit) is applied."""
    if exclude is None:
        return top_k
    if exclude.shape != (rows,) or exclude.dtype != np.bool_:
        raise VectorFormatError("exclude", f"expected {rows} booleans, one per row")
    return min(top_k, rows - int(np.count_nonzero(exclude)))


_EMPTY = SearchResult(np.empty(0, np.int64), np.empty(0), np.empty(0))


def _one_query(matrix: SearchMatrix, query: np.ndarray, top_k: int) -> np.ndarray:
    """One query vector as float32, checked against the matrix and ``top_k``."""
    q = np.asarray(query, dtype=np.float32)
    if q.ndim != 1:
        raise VectorFormatError("query", f"expected a vector (1-D), got shape {q.shape}")
    _check(matrix, q, top_k)
    return q


def _scan_side(matrix: SearchMatrix, q: np.ndarray) -> tuple[np.ndarray, float]:
    """The query as the scan sees it, and the float32 error bound of its scores."""
    qs = _query_side(matrix, q)
    return qs, float(error_bound(matrix, np.array([np.linalg.norm(qs)]))[0])


def search(
    matrix: SearchMatrix,
    query: np.ndarray,
    top_k: int,
    *,
    pool: BufferPool | None = None,
    exclude: np.ndarray | None = None,
) -> SearchResult:
    """The ``top_k`` rows nearest to one query: one gemv + top-k, pooled buffers only.

    ``exclude`` (bool per row) keeps rows out of the answer: their float32 scores are
    set to -inf before the selection, and no band or re-score ever sees them, so the
    result is the float64 top ``min(top_k, rows left)`` of the other rows."""
    q = _one_query(matrix, query, top_k)
    top_k = _excluded_top_k(top_k, matrix.rows, exclude)
    if top_k < 1:
        return _EMPTY
    if matrix.rows * matrix.dim <= DIRECT_VALUES:
        return _direct(matrix, q.reshape(1, -1), top_k, exclude)[0]
    pool = pool or default_pool()
    qs, eps = _scan_side(matrix, q)
    with pool.rent(matrix.rows, np.float32) as scores:
        np.matmul(matrix.vectors, qs, out=scores)
        _to_scores(matrix, scores, 0, matrix.rows)
        if exclude is not None:
            np.copyto(scores, np.float32(-np.inf), where=exclude)
        cand = _band(scores, top_k, eps, pool)
    if exclude is not None:  # a -inf score can still tie into a band of -inf
        cand = cand[~exclude[cand]]
    return _finish(matrix, q, cand, top_k, pool)


def _direct(
    matrix: SearchMatrix, queries: np.ndarray, top_k: int, exclude: np.ndarray | None
) -> list[SearchResult]:
    """``search`` of each query row on a small set: every row scored in float64 as the
    re-score scores it, best first by (score, row index), with no scan, band or gather
    before it. The rows are converted (and their norms summed) once for all queries."""
    source = matrix.vectors if matrix.raw is None else matrix.raw
    x = source.astype(np.float64, order="C")  # rows contiguous, as the re-score sums them
    row_sq = np.einsum("ij,ij->i", x, x) if matrix.metric == "cosine" else None
    results = []
    for query in queries:
        q = np.asarray(query, dtype=np.float64)
        key, dist, sim = _scored(x, row_sq, q, matrix.metric, in_place=False)
        order = np.argsort(key, kind="stable")  # ties stay in row order
        if exclude is not None:
            order = order[~exclude[order]]
        pick = order[:top_k]
        results.append(SearchResult(pick.astype(np.int64), dist[pick], sim[pick]))
    return results


def search_rows(
    matrix: SearchMatrix,
    query: np.ndarray,
    top_k: int,
    rows: np.ndarray,
    *,
    pool: BufferPool | None = None,
) -> SearchResult:
    """``search`` over only the rows ``rows`` (sorted row numbers): the float64 top
    ``min(top_k, len(rows))`` among them. Those rows are gathered a block at a time into
    a pooled buffer and scored there, so the cost follows the rows kept, not the set."""
    q = _one_query(matrix, query, top_k)
    top_k = min(top_k, rows.size)
    if top_k < 1:
        return _EMPTY
    pool = pool or default_pool()
    qs, eps = _scan_side(matrix, q)
    with pool.rent(rows.size, np.float32) as scores:
        for lo in range(0, rows.size, GATHER_BLOCK):
            part = rows[lo : lo + GATHER_BLOCK]
            with pool.rent((part.size, matrix.dim), np.float32) as x:
                np.take(matrix.vectors, part, axis=0, out=x, mode="clip")
                np.matmul(x, qs, out=scores[lo : lo + part.size])
        if matrix.metric == "euclidean":
            assert matrix.sq_norms is not None
            scores *= np.float32(2.0)
            scores -= matrix.sq_norms[rows]
        cand = _band(scores, top_k, eps, pool)
    return _finish(matrix, q, rows[cand], top_k, pool)


class _RunningBand:
    """Per query, the float32 entries that can still reach the float64 top-k: the best
    ``top_k`` plus every entry within ``2 * eps`` of the k-th best. Flat (query, row,
    score) arrays sorted by query, then score (best first), then row.

    A query whose band outgrows ``cap`` stops collecting (``overflow``); the caller
    finishes it another way."""

    def __init__(self, nq: int, top_k: int, eps: np.ndarray, cap: int) -> None:
        self.nq, self.top_k, self.cap = nq, top_k, cap
        self.eps2 = 2.0 * np.asarray(eps, np.float64)
        self.q = np.empty(0, np.int64)
        self.row = np.empty(0, np.int64)
        self.score = np.empty(0, np.float32)
        #: Entries below this cannot matter any more (-inf until a query has top_k).
        self.floor = np.full(nq, -np.inf)
        self.overflow = np.zeros(nq, bool)

    def merge(self, q: np.ndarray, row: np.ndarray, score: np.ndarray) -> None:
        qs = np.concatenate([self.q, q])
        rows = np.concatenate([self.row, row])
        scores = np.concatenate([self.score, score])
        order = np.lexsort((rows, -scores, qs))
        qs, rows, scores = qs[order], rows[order], scores[order]
        first = np.searchsorted(qs, np.arange(self.nq))
        counts = np.bincount(qs, minlength=self.nq)
        full = counts >= self.top_k
        kth = np.full(self.nq, -np.inf)
        kth[full] = scores[first[full] + self.top_k - 1]
        floor = np.where(self.eps2 > 0, kth - self.eps2, kth)
        rank = np.arange(qs.size) - first[qs]
        # eps == 0 means exact float32 scores: the top_k by (score, row) is the answer.
        band = (rank < self.top_k) | ((scores >= floor[qs]) & (self.eps2[qs] > 0))
        counts = np.bincount(qs[band], minlength=self.nq)
        self.overflow |= counts > self.cap
        band &= ~self.overflow[qs]
        self.q, self.row, self.score = qs[band], rows[band], scores[band]
        self.floor = np.maximum(self.floor, floor)
        self.floor[self.overflow] = np.inf

    def threshold(self) -> np.ndarray:
        """Per query, the least float32 score a new entry needs to join the band, as
        float32 rounded down (the block compare then runs in float32). With exact
        scores (eps 0) a later row must beat the k-th outright: a tie loses on row."""
        low = _down_to_f32(self.floor)
        exact = self.eps2 == 0  # the floor is then a float32 score itself
        low[exact] = np.nextafter(low[exact], np.float32(np.inf))
        return low


def search_batch(
    matrix: SearchMatrix,
    queries: np.ndarray,
    top_k: int,
    *,
    pool: BufferPool | None = None,
    block_rows: int | None = None,
    exclude: np.ndarray | None = None,
) -> list[SearchResult]:
    """``search`` for many queries at once: gemm per row block, running band per query.
    ``exclude`` as in ``search``: excluded entries never join a band."""
    qm = np.asarray(queries, dtype=np.float32)
    if qm.ndim != 2:
        raise VectorFormatError("queries", f"expected a matrix (2-D), got shape {qm.shape}")
    _check(matrix, qm, top_k)
    nq, n = qm.shape[0], matrix.rows
    if nq == 0:
        return []
    top_k = _excluded_top_k(top_k, n, exclude)
    if top_k < 1:
        return [_EMPTY] * nq
    if n * matrix.dim <= DIRECT_VALUES and nq * n <= DIRECT_PAIRS:
        return _direct(matrix, qm, top_k, exclude)
    pool = pool or default_pool()
    keep = min(n, top_k + max(RERANK_MARGIN, top_k))
    cap = min(max(keep, block_rows or BLOCK_BYTES // (4 * nq)), n)
    qs = np.ascontiguousarray(_query_side(matrix, qm))
    eps = error_bound(matrix, np.linalg.norm(qs.astype(np.float64), axis=1))
    band = _RunningBand(nq, min(top_k, n), eps, max(BAND_CAP, 4 * keep))
    with (
        pool.rent(nq * cap, np.float32) as score_buf,
        pool.rent(nq * cap, np.bool_) as mask_buf,
    ):
        for start, stop in _blocks(n, min(cap, max(keep, SEED_COLUMNS)), cap):
            width = stop - start
            scores = score_buf[: nq * width].reshape(nq, width)
            mask = mask_buf[: nq * width].reshape(nq, width)
            block_dots(qs, matrix.vectors[start:stop], scores)
            _to_scores(matrix, scores, start, stop)
            if exclude is not None:
                np.copyto(scores, np.float32(-np.inf), where=exclude[None, start:stop])
            floor = band.threshold()
            if np.isneginf(floor).any():
                _block_threshold_mask(scores, floor, min(top_k, width), band.eps2, mask, pool)
            else:
                np.greater_equal(scores, floor[:, None], out=mask)
            qi, ri = _nonzero(mask)
            if exclude is not None:  # a -inf threshold admits the excluded -inf entries
                kept = ~exclude[ri + start]
                qi, ri = qi[kept], ri[kept]
            band.merge(qi, ri + start, scores[qi, ri])
    results = _finish_batch(matrix, qm, band, top_k, pool)
    for i in np.flatnonzero(band.overflow):
        results[i] = search(matrix, qm[i], top_k, pool=pool, exclude=exclude)
    return results


def _finish_batch(
    matrix: SearchMatrix, queries: np.ndarray, band: _RunningBand, top_k: int, pool: BufferPool
) -> list[SearchResult]:
    """``_finish`` for every query's band at once, without a Python loop per query."""
    nq = len(queries)
    if not band.q.size:
        empty = SearchResult(np.empty(0, np.int64), np.empty(0), np.empty(0))
        return [empty] * nq
    key, dist, sim = _rescore(matrix, queries, band.q, band.row, pool)
    pick = _best_per_query(nq, top_k, band.q, band.row, key)
    qi = band.q[pick]
    bounds = np.searchsorted(qi, np.arange(nq + 1))
    idx, dists, sims = band.row[pick].astype(np.int64), dist[pick], sim[pick]
    return [
        SearchResult(idx[a:b], dists[a:b], sims[a:b])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _down_to_f32(x: np.ndarray) -> np.ndarray:
    """float64 bounds as float32, rounded down so a float32 compare admits no less."""
    low = x.astype(np.float32)
    return np.where(low > x, np.nextafter(low, np.float32(-np.inf)), low)


def _blocks(n: int, first: int, cap: int) -> list[tuple[int, int]]:
    """Row blocks that double from ``first`` up to ``cap``.

    Each block's candidates are the entries beating the k-th best of everything before
    it, about ``k * width / rows_seen`` per query; doubling keeps that near ``k`` per
    block instead of letting one wide early block flood the merge."""
    out, start, width = [], 0, first
    while start < n:
        stop = min(start + width, n)
        out.append((start, stop))
        start, width = stop, min(2 * width, cap)
    return out


def _block_threshold_mask(
    scores: np.ndarray,
    floor: np.ndarray,
    k: int,
    eps2: np.ndarray,
    mask: np.ndarray,
    pool: BufferPool,
) -> None:
    """Entries within ``eps2`` of each query's k-th best among the block's first columns:
    a valid bound (those columns alone hold k entries that good) that costs a partition
    of a few thousand columns instead of the whole block."""
    width = min(scores.shape[1], max(4 * k, SEED_SAMPLE))
    with pool.rent(scores.shape[0] * width, np.float32) as buf:
        neg = buf.reshape(scores.shape[0], width)
        np.negative(scores[:, :width], out=neg)
        neg.partition(k - 1, axis=1)
        thresh = _down_to_f32(-neg[:, k - 1].astype(np.float64) - eps2)
    np.greater_equal(scores, np.maximum(thresh, floor)[:, None], out=mask)


def _nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` for a sparse C-contiguous bool matrix: scan 8 bytes at a time."""
    rows, cols = mask.shape
    flat = mask.reshape(-1)
    words = flat.size // 8
    hits = np.flatnonzero(flat[: words * 8].view(np.uint64) != 0)  # bool: numpy's fast path
    pos = (hits[:, None] * 8 + np.arange(8)).reshape(-1)
    pos = pos[flat[pos]]
    tail = np.flatnonzero(flat[words * 8 :]) + words * 8
    pos = np.concatenate([pos, tail])
    return pos // cols, pos % cols
