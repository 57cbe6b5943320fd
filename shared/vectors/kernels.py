"""The SIMD kernels: the scalar functions as vectorised numpy over float32, batch-first.

Shapes: a vector is ``(d,)``, a batch is ``(n, d)``. Each metric comes as

* ``dot(a, b)`` -- one-to-one, returns a Python float;
* ``dot_many(q, m)`` -- one query against the rows of a matrix (BLAS gemv), ``(n,)``;
* ``dot_cross(a, b)`` -- all pairs of rows (BLAS gemm), ``(n, m)``;
* ``dot_pairwise(a, b)`` -- row i with row i, ``(n,)``.

Results that are arrays accept ``out=`` so a hot path can write into pooled buffers and
allocate nothing. Dimension mismatches raise the same ``DimensionMismatchError`` as the
scalar twin (``shared.vectors.scalar``), which these functions are parity-tested against.

Accuracy: float32 BLAS sums agree with the scalar twin's double sums to about 1e-5 of
``|a| |b|``. Euclidean one-to-many and cross use ``|a|^2 + |b|^2 - 2 a.b`` (one gemm instead
of n*m subtractions); that loses digits when the distance is small next to the norms, so
pairs with ``d^2 < EUCLIDEAN_REFINE * (|a|^2 + |b|^2)`` are recomputed from ``a - b``.
The result is within a relative 1e-4 of the exact distance (plus 1e-6 of the norms).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from shared.settings import usable_cores

from . import scalar
from .errors import DimensionMismatchError, VectorFormatError
from .pool import BufferPool, default_pool

F32 = np.float32
_F32 = np.dtype(F32)
#: Squared distances below this fraction of |a|^2 + |b|^2 are recomputed directly.
EUCLIDEAN_REFINE = 0.05
_REFINE_CHUNK = 4096


def _vec(x: np.ndarray, field: str) -> np.ndarray:
    if type(x) is np.ndarray and x.dtype is _F32 and x.ndim == 1:
        return x  # the common case, without asarray's cost (it matters for single pairs)
    arr = np.asarray(x, dtype=F32)
    if arr.ndim != 1:
        raise VectorFormatError(field, f"expected a vector (1-D), got shape {arr.shape}")
    return arr


def _mat(x: np.ndarray, field: str) -> np.ndarray:
    if type(x) is np.ndarray and x.dtype is _F32 and x.ndim == 2:
        return x
    arr = np.asarray(x, dtype=F32)
    if arr.ndim != 2:
        raise VectorFormatError(field, f"expected a matrix (2-D), got shape {arr.shape}")
    return arr


def _same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise DimensionMismatchError.between("b", b.shape[-1], "a", a.shape[-1])


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    _same_dim(a, b)
    if a.shape != b.shape:
        raise DimensionMismatchError("b", f"shape {b.shape} does not match a: shape {a.shape}")


# ---------------------------------------------------------------- dot


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """a . b"""
    a, b = _vec(a, "a"), _vec(b, "b")
    _same_dim(a, b)
    return float(a.dot(b))


def dot_many(q: np.ndarray, m: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """m @ q: one gemv over the rows of m."""
    q, m = _vec(q, "a"), _mat(m, "b")
    _same_dim(q, m)
    return np.matmul(m, q, out=out)


def dot_cross(a: np.ndarray, b: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b.T: every row of a with every row of b (gemm), shape (n, m)."""
    a, b = _mat(a, "a"), _mat(b, "b")
    _same_dim(a, b)
    return np.matmul(a, b.T, out=out)


def dot_pairwise(a: np.ndarray, b: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Row i of a with row i of b."""
    a, b = _mat(a, "a"), _mat(b, "b")
    _same_shape(a, b)
    return np.einsum("ij,ij->i", a, b, out=out)


# ---------------------------------------------------------------- norms


#: Squared sums outside this range lost digits in float32 (products that underflowed to
#: subnormals) or overflowed; those vectors are summed again in float64.
_SQ_SAFE_LOW, _SQ_SAFE_HIGH = 1e-30, 1e30
#: Below this norm, 1/norm is past float32's largest value (normalize divides instead).
_TINY_NORM = 1.0 / float(np.finfo(np.float32).max)


def norm(v: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray | float:
    """L2 norm of a vector (float) or of each row of a matrix.

    float32 sums, except for vectors so small or so large that their squares leave
    float32's normal range: those are summed in float64, so 1e-20 or 1e20 scaled
    vectors still get their norm right."""
    if not (type(v) is np.ndarray and v.dtype is _F32):
        v = np.asarray(v, dtype=F32)
    if v.ndim == 1:
        sq = float(np.vdot(v, v))  # vdot, unlike dot, raises no warning on overflow
        if not _SQ_SAFE_LOW <= sq <= _SQ_SAFE_HIGH:
            wide = v.astype(np.float64)
            sq = float(wide.dot(wide))
        return math.sqrt(sq)
    v = _mat(v, "v")
    done = _by_rows(v.shape[0], v.size, (v.shape[0],), out, lambda p, o: norm(v[p], out=o))
    if done is not None:
        return done
    res = np.einsum("ij,ij->i", v, v, out=out)
    extreme = np.flatnonzero((res < _SQ_SAFE_LOW) | (res > _SQ_SAFE_HIGH))
    np.sqrt(res, out=res)
    if extreme.size:
        wide = v[extreme].astype(np.float64)
        res[extreme] = np.sqrt(np.einsum("ij,ij->i", wide, wide))
    return res


def inverse_norms(m: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """1/|row| per row, 0 for zero rows: computed once at load, it makes cosine one multiply."""
    res = norm(_mat(m, "v"), out=out)
    assert isinstance(res, np.ndarray)
    np.divide(1.0, res, out=res, where=res > 0)
    return res


def normalize(v: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """v / |v| (vector or rows); zero vectors/rows come back unchanged."""
    v = np.asarray(v, dtype=F32)
    if v.ndim == 1:
        n = norm(v)
        if 0 < n < _TINY_NORM:  # 1/n overflows float32: divide by n itself
            return np.divide(v, F32(n), out=out)
        return np.multiply(v, F32(1.0 / n) if n > 0 else F32(1.0), out=out)
    v = _mat(v, "v")
    if out is None or not np.shares_memory(out, v):
        done = _by_rows(v.shape[0], v.size, v.shape, out, lambda p, o: normalize(v[p], out=o))
        if done is not None:
            return done
    inv = norm(v)
    assert isinstance(inv, np.ndarray)
    tiny = np.flatnonzero((inv > 0) & (inv < _TINY_NORM))
    if tiny.size:  # rare (subnormal rows): their reciprocal overflows float32
        tiny_rows = v[tiny] / inv[tiny, None]
    with np.errstate(over="ignore"):
        np.divide(1.0, inv, out=inv, where=inv > 0)
    inv[inv == 0] = 1.0
    inv[tiny] = 0.0
    res = np.multiply(v, inv[:, None], out=out)
    if tiny.size:
        res[tiny] = tiny_rows
    return res


# ---------------------------------------------------------------- cosine


def _safe_cos(dots: float, na: float, nb: float) -> float:
    return 0.0 if na == 0.0 or nb == 0.0 else dots / (na * nb)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """a.b / (|a| |b|), 0.0 when either norm is 0."""
    a, b = _vec(a, "a"), _vec(b, "b")
    _same_dim(a, b)
    aa, bb = float(np.vdot(a, a)), float(np.vdot(b, b))
    if not (_SQ_SAFE_LOW <= aa <= _SQ_SAFE_HIGH and _SQ_SAFE_LOW <= bb <= _SQ_SAFE_HIGH):
        a, b = a.astype(np.float64), b.astype(np.float64)  # squares left float32's range
        aa, bb = float(a.dot(a)), float(b.dot(b))
    return _safe_cos(float(np.vdot(a, b)), math.sqrt(aa), math.sqrt(bb))


def cosine_many(
    q: np.ndarray,
    m: np.ndarray,
    *,
    m_inv_norms: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Cosine of q with every row of m; pass ``inverse_norms(m)`` to skip recomputing it."""
    q = _vec(q, "a")
    res = dot_many(q, m, out=out)
    inv = inverse_norms(m) if m_inv_norms is None else m_inv_norms
    qn = math.sqrt(float(q.dot(q)))
    np.multiply(res, inv, out=res)
    np.multiply(res, F32(1.0 / qn) if qn > 0 else F32(0.0), out=res)
    return res


def cosine_cross(
    a: np.ndarray,
    b: np.ndarray,
    *,
    a_inv_norms: np.ndarray | None = None,
    b_inv_norms: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Cosine of every row of a with every row of b, shape (n, m)."""
    res = dot_cross(a, b, out=out)
    ia = inverse_norms(a) if a_inv_norms is None else a_inv_norms
    ib = inverse_norms(b) if b_inv_norms is None else b_inv_norms
    res *= ia[:, None]
    res *= ib[None, :]
    return res


def cosine_pairwise(a: np.ndarray, b: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Cosine of row i of a with row i of b."""
    res = dot_pairwise(a, b, out=out)
    res *= inverse_norms(a)
    res *= inverse_norms(b)
    return res


# ---------------------------------------------------------------- euclidean


def euclidean(a: np.ndarray, b: np.ndarray) -> float:
    """|a - b|"""
    a, b = _vec(a, "a"), _vec(b, "b")
    _same_dim(a, b)
    diff = a - b
    return math.sqrt(float(diff.dot(diff)))


def squared_norms(m: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """|row|^2 per row, the precomputable half of the euclidean expansion."""
    m = _mat(m, "v")
    return np.einsum("ij,ij->i", m, m, out=out)


def _refine(
    d2: np.ndarray, thresh: np.ndarray, a: np.ndarray, b: np.ndarray, pool: BufferPool
) -> None:
    """Recompute entries of d2 (n, m) whose expansion value is below thresh from a - b."""
    with pool.rent(d2.shape, np.bool_) as mask:
        np.less(d2, thresh, out=mask)
        rows, cols = np.nonzero(mask)
    for start in range(0, rows.size, _REFINE_CHUNK):
        r = rows[start : start + _REFINE_CHUNK]
        c = cols[start : start + _REFINE_CHUNK]
        diff = a[r] - b[c]
        d2[r, c] = np.einsum("ij,ij->i", diff, diff)


def euclidean_cross(
    a: np.ndarray,
    b: np.ndarray,
    *,
    a_sq_norms: np.ndarray | None = None,
    b_sq_norms: np.ndarray | None = None,
    out: np.ndarray | None = None,
    pool: BufferPool | None = None,
) -> np.ndarray:
    """|a_i - b_j| for all pairs via the gemm expansion (see module docstring for accuracy)."""
    a, b = _mat(a, "a"), _mat(b, "b")
    res = dot_cross(a, b, out=out)
    aa = squared_norms(a) if a_sq_norms is None else a_sq_norms
    bb = squared_norms(b) if b_sq_norms is None else b_sq_norms
    pool = pool or default_pool()
    res *= F32(-2.0)
    res += aa[:, None]
    res += bb[None, :]
    np.maximum(res, 0, out=res)
    with pool.rent(res.shape, F32) as thresh:
        np.add(aa[:, None], bb[None, :], out=thresh)
        thresh *= F32(EUCLIDEAN_REFINE)
        _refine(res, thresh, a, b, pool)
    return np.sqrt(res, out=res)


def euclidean_many(
    q: np.ndarray,
    m: np.ndarray,
    *,
    m_sq_norms: np.ndarray | None = None,
    out: np.ndarray | None = None,
    pool: BufferPool | None = None,
) -> np.ndarray:
    """|q - row| for every row of m (gemv expansion, near pairs recomputed)."""
    q = _vec(q, "a")
    res = euclidean_cross(
        q[None, :],
        m,
        b_sq_norms=m_sq_norms,
        out=None if out is None else out.reshape(1, -1),
        pool=pool,
    )
    return res.reshape(-1) if out is None else out


def euclidean_pairwise(
    a: np.ndarray, b: np.ndarray, *, out: np.ndarray | None = None
) -> np.ndarray:
    """|a_i - b_i| per row, computed directly."""
    a, b = _mat(a, "a"), _mat(b, "b")
    _same_shape(a, b)
    diff = a - b
    res = np.einsum("ij,ij->i", diff, diff, out=out)
    return np.sqrt(res, out=res)


# ---------------------------------------------------------------- element-wise

#: Batches at least this many elements are split by rows across the cores: numpy's
#: element-wise loops are single-threaded but release the GIL, and one core cannot
#: saturate memory bandwidth. Small requests stay on the calling thread.
PARALLEL_MIN_ELEMENTS = 1 << 20
_WORKERS = min(4, usable_cores())
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_in_worker = threading.local()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(_WORKERS, thread_name_prefix="vector-kernels")
        return _executor


def _by_rows(
    rows: int, size: int, shape: tuple[int, ...], out: np.ndarray | None, body: Callable
) -> np.ndarray | None:
    """Run ``body(row_slice, out_slice)`` over row chunks on several cores, or return None
    (run it inline) when the batch is small, single-core, or already inside a chunk."""
    if _WORKERS < 2 or size < PARALLEL_MIN_ELEMENTS or rows < _WORKERS:
        return None
    if getattr(_in_worker, "active", False):
        return None
    out = np.empty(shape, F32) if out is None else out
    bounds = np.linspace(0, rows, _WORKERS + 1).astype(int)

    def chunk(i: int) -> None:
        _in_worker.active = True
        try:
            part = slice(bounds[i], bounds[i + 1])
            body(part, out[part])
        finally:
            _in_worker.active = False

    for done in [_pool().submit(chunk, i) for i in range(_WORKERS)]:
        done.result()
    return out


def _rows_of(x: np.ndarray, part: slice) -> np.ndarray:
    """The rows of a matrix operand; a vector operand broadcasts to every chunk."""
    return x[part] if x.ndim == 2 else x


def _binary_shapes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=F32), np.asarray(b, dtype=F32)
    _same_dim(a, b)
    if a.ndim == b.ndim == 2 and a.shape[0] != b.shape[0]:
        raise DimensionMismatchError("b", f"{b.shape[0]} rows do not match a: {a.shape[0]} rows")
    return a, b


def _binary(ufunc: np.ufunc, a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    a, b = _binary_shapes(a, b)
    big = a if a.ndim >= b.ndim else b
    if big.ndim == 2:
        shape = np.broadcast_shapes(a.shape, b.shape)
        done = _by_rows(
            shape[0],
            big.size,
            shape,
            out,
            lambda p, o: ufunc(_rows_of(a, p), _rows_of(b, p), out=o),
        )
        if done is not None:
            return done
    return ufunc(a, b, out=out)


def add(a: np.ndarray, b: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """a + b (a vector broadcasts over the rows of a matrix)."""
    return _binary(np.add, a, b, out)


def subtract(a: np.ndarray, b: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """a - b"""
    return _binary(np.subtract, a, b, out)


def scale(v: np.ndarray, s: float, *, out: np.ndarray | None = None) -> np.ndarray:
    """v * s (s a number, or one per row as an (n, 1) array)."""
    v, ss = np.asarray(v, dtype=F32), np.asarray(s, dtype=F32)
    if v.ndim == 2 and ss.ndim == 0:
        done = _by_rows(v.shape[0], v.size, v.shape, out, lambda p, o: np.multiply(v[p], ss, out=o))
        if done is not None:
            return done
    return np.multiply(v, ss, out=out)


def lerp(
    a: np.ndarray, b: np.ndarray, t: float | np.ndarray, *, out: np.ndarray | None = None
) -> np.ndarray:
    """a + t (b - a)."""
    a, b = _binary_shapes(a, b)
    tt = np.asarray(t, dtype=F32)
    if a.ndim == 2 and b.ndim == 2 and tt.ndim == 0 and (out is None or out is not a):
        done = _by_rows(a.shape[0], a.size, a.shape, out, lambda p, o: lerp(a[p], b[p], tt, out=o))
        if done is not None:
            return done
    if out is not None and np.shares_memory(out, a):
        diff = b - a
        diff *= tt
        return np.add(a, diff, out=out)
    res = np.subtract(b, a, out=out)
    res *= tt
    res += a
    return res


def softmax(v: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """exp(v - max) / sum along the last axis (each row of a matrix)."""
    v = np.asarray(v, dtype=F32)
    if v.shape[-1] == 0:
        return np.empty_like(v) if out is None else out
    if v.ndim == 2 and (out is None or not np.shares_memory(out, v)):
        done = _by_rows(v.shape[0], v.size, v.shape, out, lambda p, o: softmax(v[p], out=o))
        if done is not None:
            return done
    top = v.max(axis=-1, keepdims=True)
    res = np.subtract(v, top, out=out)
    np.exp(res, out=res)
    res /= res.sum(axis=-1, keepdims=True)
    return res


def argmax(v: np.ndarray) -> np.ndarray | int | None:
    """Index of the first largest component: int (None if empty) for a vector, int64 rows."""
    v = np.asarray(v, dtype=F32)
    if v.ndim == 1:
        return int(v.argmax()) if v.size else None
    if v.shape[-1] == 0:
        raise VectorFormatError("v", "rows of dimension 0 have no argmax")
    return v.argmax(axis=-1)


# ---------------------------------------------------------------- aggregates


class MeanVariance(NamedTuple):
    """Per-component mean and population variance (float64: statistics, not stored)."""

    count: int
    mean: np.ndarray
    variance: np.ndarray


_AGG_ROWS = 8192


def centroid(m: np.ndarray) -> np.ndarray | None:
    """Mean of the rows as float32 (summed in float64); None for no rows."""
    m = _mat(m, "v")
    if m.shape[0] == 0:
        return None
    return (m.sum(axis=0, dtype=np.float64) / m.shape[0]).astype(F32)


def mean_variance(m: np.ndarray) -> MeanVariance | None:
    """Two passes in float64 blocks (as stable as Welford, vectorised); None for no rows."""
    m = _mat(m, "v")
    n = m.shape[0]
    if n == 0:
        return None
    mean = m.sum(axis=0, dtype=np.float64) / n
    m2 = np.zeros(m.shape[1], dtype=np.float64)
    for start in range(0, n, _AGG_ROWS):
        block = m[start : start + _AGG_ROWS].astype(np.float64)
        block -= mean
        m2 += np.einsum("ij,ij->j", block, block)
    return MeanVariance(n, mean, m2 / n)


def geometric_median(m: np.ndarray) -> np.ndarray | None:
    """Weiszfeld (Vardi-Zhang for coincident points) in float64, the scalar twin's rule.

    Tolerance and iteration cap are ``scalar.GEOMETRIC_MEDIAN_TOLERANCE`` / ``_MAX_ITER``.
    """
    m = _mat(m, "v")
    if m.shape[0] == 0:
        return None
    x = m.astype(np.float64)
    y = x.mean(axis=0)
    for _ in range(scalar.GEOMETRIC_MEDIAN_MAX_ITER):
        diff = x - y
        dists = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        mean_d = float(dists.mean())
        if mean_d == 0.0:
            break
        near = dists <= scalar.GEOMETRIC_MEDIAN_COINCIDENT * mean_d
        w = np.zeros_like(dists)
        np.divide(1.0, dists, out=w, where=~near)
        wsum = float(w.sum())
        if wsum == 0.0:
            break
        t = (w @ x) / wsum
        coincident = int(near.sum())
        new = t
        if coincident:
            r = float(np.linalg.norm(wsum * (t - y)))
            if r == 0.0:
                break
            gamma = min(1.0, coincident / r)
            new = (1.0 - gamma) * t + gamma * y
        step = float(np.linalg.norm(new - y))
        y = new
        if step <= scalar.GEOMETRIC_MEDIAN_TOLERANCE * (float(np.linalg.norm(y)) + mean_d):
            break
    return y.astype(F32)


# ---------------------------------------------------------------- selection


#: From this many scores on, top_k first keeps only entries at least as good as the
#: k-th best of a strided sample: a valid bound (the sample is a subset), so the exact
#: selection then runs on a few thousand candidates instead of every score.
TOP_K_SAMPLE_FROM = 1 << 16


def top_k(
    scores: np.ndarray, k: int, largest: bool = True, *, pool: BufferPool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k best scores as (indices, values), best first, ties broken by lower index.

    Selection partitions a pooled copy in place (argpartition would allocate an N-sized
    index array per call), then sorts only the k winners. Large inputs are first cut down
    to the entries that beat a sampled bound (one compare pass over the scores).
    """
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise VectorFormatError("scores", f"expected 1-D scores, got shape {scores.shape}")
    n = scores.size
    k = max(0, min(int(k), n))
    if k == 0:
        return np.empty(0, dtype=np.int64), scores[:0].copy()
    if k < n:
        pool = pool or default_pool()
        if n >= TOP_K_SAMPLE_FROM and k * 256 <= n:
            cand = _beat_sampled_bound(scores, k, largest, pool)
            sub_idx = _select(scores[cand], k, largest, pool)
            idx = cand[sub_idx]
        else:
            idx = _select(scores, k, largest, pool)
    else:
        idx = np.arange(n, dtype=np.int64)
    vals = scores[idx]
    order = np.lexsort((idx, -vals if largest else vals))
    return idx[order], vals[order]


def _select(scores: np.ndarray, k: int, largest: bool, pool: BufferPool) -> np.ndarray:
    """Indices of the k best (ties: lowest indices), unordered; k < scores.size."""
    n = scores.size
    with pool.rent(n, scores.dtype) as key:
        if largest:
            np.negative(scores, out=key)
        else:
            np.copyto(key, scores)
        key.partition(k - 1)
        kth = key[k - 1]
    bound = -kth if largest else kth
    with pool.rent(n, np.bool_) as mask:
        (np.greater if largest else np.less)(scores, bound, out=mask)
        better = np.flatnonzero(mask)
        np.equal(scores, bound, out=mask)
        ties = np.flatnonzero(mask)[: k - better.size]
    return np.concatenate([better, ties])


def _beat_sampled_bound(scores: np.ndarray, k: int, largest: bool, pool: BufferPool) -> np.ndarray:
    """Sorted indices of every score at least as good as the k-th best of a strided
    sample; all of the true k best are among them."""
    step = max(1, scores.size // max(4096, 32 * k))
    sample = scores[::step]
    with pool.rent(sample.size, scores.dtype) as key:
        if largest:
            np.negative(sample, out=key)
        else:
            np.copyto(key, sample)
        key.partition(k - 1)
        bound = -key[k - 1] if largest else key[k - 1]
    with pool.rent(scores.size, np.bool_) as mask:
        (np.greater_equal if largest else np.less_equal)(scores, bound, out=mask)
        return np.flatnonzero(mask)
