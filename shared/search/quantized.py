"""Compressed exact search: an 8-bit copy of the rows is scanned, float64 decides.

Why: the float32 scan already reads memory as fast as the machine allows, so the only
way to go faster is to read fewer bytes. Each dimension ``j`` is quantised on its own
range: ``x[i, j] = offset[j] + scale[j] * c[i, j] + r[i, j]`` with integer codes
``c`` in [-127, 127] (stored as uint8 ``c + 127``) and a residual ``r``. A query is
folded into the codes' frame (``w = q * scale``) and quantised too:
``w = alpha * u + delta`` with int8 ``u``. The scan computes ``u . c[i]`` exactly in
integers (``int8_scan``), and for every row

    q . x[i] = q . offset + alpha * (u . c[i]) + delta . c[i] + q . r[i]

where the last two terms are at most ``|delta| * |c[i]| + |q| * |r[i]|`` (Cauchy-Schwarz,
with ``|c[i]|`` and ``|r[i]|`` kept per row, rounded up), plus float64 rounding bounded
by ``gamma`` times the magnitudes involved. So every row gets an interval ``[lo, hi]``
that holds its float64 score (cosine divides by the row norm; euclidean bounds the
distance to the decoded row and adds ``|r[i]|`` by the triangle inequality). Let ``L``
be the k-th largest ``lo``: a row in the float64 top k has a score of at least ``L``,
so its ``hi`` is too. Every row with ``hi >= L`` is re-scored in float64 from the
stored float32 rows (which may be a memory-mapped file: only those rows are read), and
the best k by (score, row index) are the float64 brute-force answer, ties and
near-duplicates included.

Most rows are ruled out without computing their interval: a per-query threshold on the
integer dot (from a valid ``L`` of a sample of rows and the largest per-row error)
keeps only rows that may pass. A cosine batch compares each dot times its row's inverse
norm instead (``_block_values``), so the spread of the rows' norms does not widen it; a
euclidean batch compares ``recon_sq - 2 * alpha * dot`` in float32 where it fits, its
rounding bounded in the threshold (``_euclid_error32``).

A ``mask`` (a metadata filter's matching rows) narrows the answer to those rows: ``L``
is then taken over matching rows only (the bound holds for the top k of the rows that
may be returned) and a row outside the mask never enters the candidate band. When few
rows match, only their codes are scanned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from shared.search import exact as core
from shared.search import int8_scan
from shared.vectors.errors import VectorFormatError
from shared.vectors.pool import BufferPool, default_pool

_U = 2.0**-53  # float64 unit roundoff
_U32 = 2.0**-24  # float32 unit roundoff
_TINY32 = 2.0**-149  # the spacing of float32 subnormals
LEVELS = 127
#: Rows quantised per step at build time (float64 temporaries of this many rows).
BUILD_CHUNK = 4096
#: Rows whose intervals seed the single-query threshold (spread over the set).
SAMPLE_ROWS = 4096
#: Bytes of int32 dots per batch block (rows x queries x 4).
BATCH_BLOCK_BYTES = 4 * 1024 * 1024
#: A batch query whose candidates outgrow this many rows finishes as a single query.
BAND_CAP = 4096


def _gamma(dim: int) -> float:
    """A generous bound on the relative rounding of any float64 sum of ``dim`` terms and
    the few operations around it (the textbook bound is ``dim * u``)."""
    return 16.0 * (dim + 8) * _U


def _up32(x: np.ndarray) -> np.ndarray:
    """float64 as float32, rounded up (kept bounds must never shrink)."""
    y = x.astype(np.float32)
    return np.where(y < x, np.nextafter(y, np.float32(np.inf)), y)


@dataclass(frozen=True)
class QuantizedRows:
    """A set's compressed scan copy plus per-row error terms; ``rows`` (the float32
    values, often a memory map) is read only to re-score candidates."""

    codes: np.ndarray  # (n, d) uint8: c + 127
    offset: np.ndarray  # (d,) float64
    scale: np.ndarray  # (d,) float64
    residual: np.ndarray  # (n,) float32 >= |r[i]|
    code_norm: np.ndarray  # (n,) float32 >= |c[i]| (centred codes)
    code_sum: np.ndarray  # (n,) float64: 127 * sum of the uint8 codes (centres an unsigned dot)
    norms: np.ndarray  # (n,) float64: |x[i]| (cosine)
    recon_sq: np.ndarray  # (n,) float64: |scale * c[i]|^2 (euclidean)
    rows: np.ndarray | RowSource  # (n, d) float32

    def __post_init__(self) -> None:
        n = self.codes.shape[0]
        f64 = np.float64
        nz = self.norms > 0
        stats = {
            "offset_norm": float(np.linalg.norm(self.offset)) * (1 + 1e-12),
            "max_residual": float(self.residual.max(initial=0.0)),
            "max_code_norm": float(self.code_norm.max(initial=0.0)),
            "max_norm": float(self.norms.max(initial=0.0)),
            "min_norm": float(self.norms[nz].min(initial=np.inf)) if n else np.inf,
            "max_recon_sq": float(self.recon_sq.max(initial=0.0)),
            "zero_rows": np.flatnonzero(~nz).astype(np.int64),
            "inv_norms": np.divide(1.0, self.norms, out=np.zeros(n, f64), where=nz),
        }
        inv = stats["inv_norms"]
        stats["inv_lo"] = float(inv.min(initial=np.inf)) if n else 0.0
        stats["inv_hi"] = float(inv.max(initial=0.0))
        # A power of two (exact) that brings the largest inverse norm into [0.5, 1): the
        # float32 copy then neither overflows nor loses more than it must to subnormals.
        shift = math.ldexp(1.0, -math.frexp(stats["inv_hi"])[1]) if stats["inv_hi"] else 1.0
        stats["inv_shift"] = shift
        stats["inv32"] = (inv * shift).astype(np.float32)
        object.__setattr__(self, "_stats", stats)

    @property
    def stats(self) -> dict:
        return self._stats  # type: ignore[attr-defined]

    @property
    def count(self) -> int:
        return int(self.codes.shape[0])

    @property
    def dim(self) -> int:
        return int(self.codes.shape[1])

    @property
    def nbytes(self) -> int:
        """Resident bytes: everything but the float32 rows."""
        parts = (self.codes, self.residual, self.code_norm, self.code_sum, self.norms)
        extra = self.stats["inv_norms"].nbytes + self.stats["inv32"].nbytes + self.recon_sq.nbytes
        return sum(p.nbytes for p in parts) + extra

    def view(self, metric: core.Metric) -> core.SearchMatrix:
        """The float32 rows as ``search`` reads them to re-score (no copy); rows still
        arriving (``RowSource``) are waited for."""
        rows = self.rows if isinstance(self.rows, np.ndarray) else self.rows.array(wait=True)
        return _matrix(rows, metric)

    def shape_check(self, metric: core.Metric) -> core.SearchMatrix:
        """A matrix of the right shape for argument checks (reads no row)."""
        return core.SearchMatrix(metric, self.codes, None, max_norm=1.0)


class RowSource(Protocol):
    """Float32 rows not local yet (a snapshot still downloading): ``gather`` reads a few
    by index, ``array`` gives all of them once they are here."""

    shape: tuple[int, int]

    def gather(self, idx: np.ndarray) -> np.ndarray: ...

    def array(self, wait: bool = False) -> np.ndarray | None: ...


#: A re-score band larger than this waits for all rows instead of gathering them.
GATHER_MAX = 50_000


def _matrix(rows: np.ndarray, metric: core.Metric) -> core.SearchMatrix:
    return core.SearchMatrix(metric, rows, None, max_norm=1.0)


def _finish(
    qr: QuantizedRows,
    metric: core.Metric,
    q: np.ndarray,
    cand: np.ndarray,
    top_k: int,
    pool: BufferPool,
) -> core.SearchResult:
    """``search._finish`` over the candidate rows (sorted), wherever the rows are."""
    rows = qr.rows
    if not isinstance(rows, np.ndarray):
        full = rows.array(wait=cand.size > GATHER_MAX)
        if full is None:  # gather just the candidates; local order = row order
            local = rows.gather(cand)
            got = core._finish(_matrix(local, metric), q, np.arange(cand.size), top_k, pool)
            return core.SearchResult(cand[got.indices], got.distances, got.similarities)
        rows = full
    return core._finish(_matrix(rows, metric), q, cand, top_k, pool)


def quantize(rows: np.ndarray, *, keep: np.ndarray | None = None) -> QuantizedRows:
    """Build the compressed copy of ``rows`` (n, d) float32. ``keep`` is what the result
    holds for re-scoring (default ``rows``): pass a memory map of the same values to keep
    them off the heap."""
    x = np.asarray(rows, dtype=np.float32)
    if x.ndim != 2:
        raise VectorFormatError("vectors", f"expected a matrix (2-D), got shape {x.shape}")
    n, d = x.shape
    g = _gamma(d)
    if n:
        lo, hi = x.min(axis=0).astype(np.float64), x.max(axis=0).astype(np.float64)
    else:
        lo = hi = np.zeros(d)
    offset = (lo + hi) / 2
    scale = (hi - lo) / (2 * LEVELS)
    live = scale > 0
    inv = np.divide(1.0, scale, out=np.zeros(d), where=live)
    off_norm = float(np.linalg.norm(offset))
    codes = np.empty((n, d), np.uint8)
    residual, code_norm = np.empty(n, np.float32), np.empty(n, np.float32)
    code_sum, norms, recon_sq = np.empty(n), np.empty(n), np.empty(n)
    for s in range(0, n, BUILD_CHUNK):
        e = min(n, s + BUILD_CHUNK)
        x64 = x[s:e].astype(np.float64)
        c = np.rint((x64 - offset) * inv)
        np.clip(c, -LEVELS, LEVELS, out=c)
        codes[s:e] = c + LEVELS
        sc = scale * c
        r = x64 - (offset + sc)
        res = np.sqrt(np.einsum("ij,ij->i", r, r))
        p = np.einsum("ij,ij->i", sc, sc)
        # |computed r - exact r| <= u * (2|sc| + |offset| + |r|) per element, then the norm.
        slack = 2 * _U * (2 * np.sqrt(p) + off_norm + res)
        residual[s:e] = _up32((res + slack) * (1 + g))
        code_norm[s:e] = _up32(np.sqrt(np.einsum("ij,ij->i", c, c)))
        code_sum[s:e] = LEVELS * (c + LEVELS).sum(axis=1)
        norms[s:e] = np.sqrt(np.einsum("ij,ij->i", x64, x64))
        recon_sq[s:e] = p
    return QuantizedRows(
        codes,
        offset,
        scale,
        residual,
        code_norm,
        code_sum,
        norms,
        recon_sq,
        x if keep is None else keep,
    )


@dataclass(frozen=True)
class _Queries:
    """Per query: the query in the codes' frame, its int8 form and error terms."""

    metric: str
    raw: np.ndarray  # (nq, d) float32 as given (the re-score reads it)
    u: np.ndarray  # (nq, d) int8
    alpha: np.ndarray
    dn: np.ndarray  # >= |delta| (+ rounding of w)
    qn: np.ndarray  # >= |qv|
    c0: np.ndarray  # qv . offset (dot, cosine)
    qsq: np.ndarray  # |qv|^2 (euclidean)
    ad_max: np.ndarray  # >= alpha * |u . c| for every row
    zero: np.ndarray  # dot/cosine with a zero query: every score is exactly 0
    #: euclidean: >= |v - w| for a row's float32 value ``v`` (``_block_values``) and its
    #: exact ``w = recon_sq - 2 * alpha * (u . c)``; None: the values are float64.
    err32: np.ndarray | None = None


def _prepare_queries(
    qr: QuantizedRows, queries: np.ndarray, metric: str, levels: int = LEVELS
) -> _Queries:
    """The queries in the codes' frame, quantised to ``|u| <= levels`` (what the scan
    engine takes: see ``int8_scan``)."""
    q64 = queries.astype(np.float64)
    g = _gamma(qr.dim)
    if metric == "cosine":
        n = np.sqrt(np.einsum("ij,ij->i", q64, q64))
        qv = q64 / np.where(n > 0, n, 1.0)[:, None]
    elif metric == "dot":
        qv = q64
    else:
        qv = q64 - qr.offset
    w = qv * qr.scale
    alpha = np.abs(w).max(axis=1, initial=0.0) / levels
    inv = np.divide(1.0, alpha, out=np.zeros_like(alpha), where=alpha > 0)
    uf = np.clip(np.rint(w * inv[:, None]), -levels, levels)
    delta = w - alpha[:, None] * uf
    dn = np.sqrt(np.einsum("ij,ij->i", delta, delta)) * (1 + g)
    dn += 4 * _U * np.sqrt(np.einsum("ij,ij->i", w, w))
    qsq = np.einsum("ij,ij->i", qv, qv)
    unorm = np.sqrt(np.einsum("ij,ij->i", uf, uf))
    zero = ~q64.any(axis=1) if metric != "euclidean" else np.zeros(len(q64), bool)
    ad_max = alpha * unorm * qr.stats["max_code_norm"] * (1 + g)
    return _Queries(
        metric,
        queries,
        uf.astype(np.int8),
        alpha,
        dn,
        np.sqrt(qsq) * (1 + g),
        qv @ qr.offset if metric != "euclidean" else np.zeros(len(q64)),
        qsq,
        ad_max,
        zero,
        _euclid_error32(qr, alpha, ad_max) if metric == "euclidean" else None,
    )


#: Euclidean values are float32 while every magnitude in them lies within
#: [1 / _F32_RANGE, _F32_RANGE]: far from overflow, and far enough from the subnormals
#: that their rounding (``_TINY32`` at most, each) does not swamp the values.
_F32_RANGE = 2.0**100


def _euclid_error32(qr: QuantizedRows, alpha: np.ndarray, ad_max: np.ndarray) -> np.ndarray | None:
    """Per query, a bound on ``|v - w|`` for the float32 value
    ``v = f32(f32(f32(u . c) * f32(-2 * alpha)) + f32(recon_sq))`` of any row and its exact
    ``w = recon_sq - 2 * alpha * (u . c)``; None if some magnitude leaves the range.

    Five roundings to nearest, each at most ``_U32`` relative or, in the subnormals,
    ``_TINY32 / 2``: ``|v - w| <= 4.01 * _U32 * 2 * alpha * |u . c| + 2.01 * _U32 *
    recon_sq + 1.01 * _TINY32``. The bound doubles each term (``ad_max`` bounds
    ``alpha * |u . c|``)."""
    recon = qr.stats["max_recon_sq"]
    top = np.maximum(2 * ad_max, recon)
    live = alpha > 0
    ok = recon > 1 / _F32_RANGE and np.all(np.isfinite(top) & (top < _F32_RANGE))
    ok = ok and np.all(~live | (2 * alpha > 1 / _F32_RANGE))
    if not ok:
        return None
    return 8 * _U32 * (2 * ad_max + recon) + 8 * _TINY32


def _intervals(
    qr: QuantizedRows, p: _Queries, qi: np.ndarray, ri: np.ndarray, cu: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) holding the float64 score (larger is better) of each (query, row) entry,
    from the exact centred integer dot ``cu``."""
    g = _gamma(qr.dim)
    st = qr.stats
    r = qr.residual[ri].astype(np.float64)
    c = qr.code_norm[ri].astype(np.float64)
    qn, dn, alpha = p.qn[qi], p.dn[qi], p.alpha[qi]
    ad = alpha * cu
    if p.metric == "euclidean":
        psq = qr.recon_sq[ri]
        e2 = psq - 2 * ad + p.qsq[qi]
        eps = 2 * dn * c + g * (psq + 2 * np.abs(ad) + p.qsq[qi])
        shift = r + 2 * _U * qn  # the residual, and the rounding of q - offset
        dlo = np.maximum(np.sqrt(np.maximum(e2 - eps, 0.0)) - shift, 0.0) * (1 - g)
        dhi = (np.sqrt(np.maximum(e2 + eps, 0.0)) + shift) * (1 + g)
        return -dhi, -dlo
    a = p.c0[qi] + ad
    e = qn * r + dn * c + g * (qn * (st["offset_norm"] + qr.norms[ri]) + np.abs(ad) + np.abs(a))
    if p.metric == "dot":
        return a - e, a + e
    inv = st["inv_norms"][ri]
    lo, hi = (a - e) * inv, (a + e) * inv
    lo -= 4 * g * (1 + np.abs(lo))
    hi += 4 * g * (1 + np.abs(hi))
    zero = inv == 0  # a zero row: cosine 0 exactly
    lo[zero] = 0.0
    hi[zero] = 0.0
    return lo, hi


def _thresholds(qr: QuantizedRows, p: _Queries, floor: np.ndarray) -> np.ndarray:
    """Per query, the least centred integer dot a row needs for ``hi >= floor``
    (dot and cosine; -inf where nothing can be ruled out yet)."""
    g = _gamma(qr.dim)
    st = qr.stats
    e_max = _error_max(qr, p)
    need = floor.copy()
    if p.metric == "cosine":
        finite = np.where(np.isfinite(floor), floor, 0.0)
        lo = finite - 8 * g * (1 + np.abs(finite))
        need = np.minimum(lo * st["min_norm"], lo * st["max_norm"])
        need = np.where(np.isfinite(st["min_norm"]), need, -np.inf)
    live = (p.alpha > 0) & np.isfinite(floor)
    safe = np.where(live, p.alpha, 1.0)
    t = np.where(live, (need - e_max - p.c0) / safe, -np.inf)
    slack = 1e-9 * (np.abs(t) + (np.abs(need) + e_max + np.abs(p.c0)) / safe)
    return _unless_infinite(floor, np.floor(t - slack) - 1, -np.inf, np.inf)


def _error_max(qr: QuantizedRows, p: _Queries) -> np.ndarray:
    """Per query, at least the error term ``e`` of ``_intervals`` of every row (dot and
    cosine), from the set's largest per-row terms."""
    g = _gamma(qr.dim)
    st = qr.stats
    a_max = np.abs(p.c0) + p.ad_max
    e_max = p.qn * st["max_residual"] + p.dn * st["max_code_norm"]
    return e_max + g * (p.qn * (st["offset_norm"] + st["max_norm"]) + p.ad_max + a_max)


def _scaled_error(qr: QuantizedRows) -> float:
    """The absolute part of the error of a scaled value (``int8_scan.scaled_dots`` with
    ``inv32``): with ``w = (u . c) * inv * inv_shift`` exactly, the float32 value ``v``
    has ``|v - w| <= 4 * _U32 * |v| + _scaled_error`` (three roundings to nearest, and
    what subnormals lose: at most ``|u . c| + 1`` spacings)."""
    return 2.0 * (LEVELS * LEVELS * qr.dim + 2) * _TINY32


def _cosine_terms(qr: QuantizedRows, p: _Queries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query: the least and the most ``c0 * inv`` over the rows (``inv`` runs from
    ``inv_lo`` to ``inv_hi``, 0 for a zero row), and a bound on ``e * inv`` plus the
    rounding ``_intervals`` adds to a cosine interval, for every row."""
    g = _gamma(qr.dim)
    st = qr.stats
    e_max = _error_max(qr, p)
    ends = (p.c0 * st["inv_lo"], p.c0 * st["inv_hi"])
    c_lo, c_hi = np.minimum(*ends), np.maximum(*ends)
    size = 2 * (np.abs(p.c0) + p.ad_max + e_max) * st["inv_hi"]  # >= |lo|, |hi|
    return c_lo, c_hi, e_max * st["inv_hi"] + 4 * g * (1 + size)


def _scaled_thresholds(qr: QuantizedRows, p: _Queries, floor: np.ndarray) -> np.ndarray:
    """Per query (cosine), the least scaled value (``_block_values``) a row needs for
    ``hi >= floor``, as float32 rounded down; -inf where nothing can be ruled out yet.

    ``hi <= c_hi + alpha * w / inv_shift + spread`` (``_cosine_terms``) for the exact
    scaled dot ``w``, so a row with ``w < w*`` (the ``w`` where that bound meets the
    floor) is out. A row's float32 value under ``t`` has ``w < t + 4 * _U32 * |t| + z``:
    ``t`` is ``w*`` less a margin (1e-6, relative) that covers both, and float64's own
    rounding of ``w*``."""
    st = qr.stats
    _, c_hi, spread = _cosine_terms(qr, p)
    live = (p.alpha > 0) & np.isfinite(floor)
    per = st["inv_shift"] / np.where(live, p.alpha, 1.0)
    finite = np.where(np.isfinite(floor), floor, 0.0)
    w = (finite - c_hi - spread) * per
    margin = 1e-6 * (np.abs(w) + (np.abs(finite) + np.abs(c_hi) + spread) * per)
    t = np.where(live, w - margin - 2 * _scaled_error(qr), -np.inf)
    return core._down_to_f32(_unless_infinite(floor, t, -np.inf, np.inf))


def _unless_infinite(floor: np.ndarray, value: np.ndarray, low: float, high: float) -> np.ndarray:
    """``value`` where ``floor`` is finite; ``low`` (admit all) for -inf, ``high`` (admit
    none: an overflowed or zero query) for +inf."""
    out = np.where(np.isfinite(floor), value, low)
    return np.where(np.isposinf(floor), high, out)


def _euclid_limit(qr: QuantizedRows, p: _Queries, floor: np.ndarray) -> np.ndarray:
    """Per query, the most ``recon_sq - 2 * alpha * (u . c)`` a row may have for
    ``hi >= floor`` (inf where nothing can be ruled out yet)."""
    g = _gamma(qr.dim)
    st = qr.stats
    dk = np.where(np.isfinite(floor), -floor, 0.0)
    b = dk / (1 - g) + st["max_residual"] + 2 * _U * p.qn
    eps = 2 * p.dn * st["max_code_norm"] + g * (st["max_recon_sq"] + 2 * p.ad_max + p.qsq)
    t = b * b + eps - p.qsq
    t += 1e-9 * (np.abs(t) + st["max_recon_sq"] + 2 * p.ad_max + p.qsq)
    return _unless_infinite(floor, t, np.inf, -np.inf)


def _kth(values: np.ndarray, k: int) -> float:
    return float(-np.partition(-values, k - 1)[k - 1])


#: A masked scan reads only the matching rows' codes (a gather) when at most this share
#: of the rows match; above it, scanning every code and picking the matches is cheaper
#: (codes are row-major, so a gathered row is one contiguous read: measured on 200k x 384
#: rows, the gather took a sixth of the scan's time at 1% and as long at a quarter).
GATHER_SHARE = 0.25

_EMPTY = core.SearchResult(np.empty(0, np.int64), np.empty(0), np.empty(0))


def _selected(qr: QuantizedRows, mask: np.ndarray | None) -> np.ndarray | None:
    """The rows a mask keeps (sorted), or None for every row."""
    if mask is None:
        return None
    if mask.shape != (qr.count,) or mask.dtype != np.bool_:
        raise VectorFormatError("mask", f"expected {qr.count} booleans, one per row")
    return np.flatnonzero(mask)


def search(
    qr: QuantizedRows,
    query: np.ndarray,
    top_k: int,
    metric: core.Metric,
    *,
    pool: BufferPool | None = None,
    mask: np.ndarray | None = None,
) -> core.SearchResult:
    """The ``top_k`` rows nearest to one query, exactly as ``search.search`` ranks them;
    with ``mask`` (bool per row), the top ``min(top_k, matches)`` of the rows it keeps."""
    q = np.asarray(query, dtype=np.float32)
    if q.ndim != 1:
        raise VectorFormatError("query", f"expected a vector (1-D), got shape {q.shape}")
    core._check(qr.shape_check(metric), q, top_k)
    pool = pool or default_pool()
    n = qr.count
    engine = int8_scan.engines("one").pick(qr.dim)
    p = _prepare_queries(qr, q[None, :], metric, engine.levels)
    sel = _selected(qr, mask)
    if sel is not None:
        return _search_within(qr, q, p, engine, top_k, metric, sel, pool)
    if p.zero[0] or n <= top_k:
        return _finish(qr, metric, q, np.arange(min(n, top_k)), top_k, pool)
    k = top_k
    dots = engine.dots(qr.codes, qr.code_sum, p.u)
    raw = np.ascontiguousarray(dots[:, 0], dtype=np.float64)  # the centred dot u . c
    with pool.rent(n, np.bool_) as mask:
        step = max(1, n // max(SAMPLE_ROWS, 4 * k))
        sample = np.arange(0, n, step)
        zeros = np.zeros(sample.size, np.intp)
        lo, _ = _intervals(qr, p, zeros, sample, raw[sample])
        floor = np.array([_kth(lo, k)])
        if metric == "euclidean":
            limit = _euclid_limit(qr, p, floor)[0]
            with pool.rent(n, np.float64) as tmp:
                np.multiply(raw, -2 * p.alpha[0], out=tmp)
                tmp += qr.recon_sq
                np.less_equal(tmp, limit, out=mask)
        else:
            np.greater_equal(raw, _thresholds(qr, p, floor)[0], out=mask)
        idx = np.flatnonzero(mask)
        if metric == "cosine" and qr.stats["zero_rows"].size:
            idx = np.union1d(idx, qr.stats["zero_rows"])
        cu = raw[idx]
    lo, hi = _intervals(qr, p, np.zeros(idx.size, np.intp), idx, cu)
    cand = idx[hi >= _kth(lo, k)]
    return _finish(qr, metric, q, cand, top_k, pool)


def _search_within(
    qr: QuantizedRows,
    q: np.ndarray,
    p: _Queries,
    engine: int8_scan.Engine,
    top_k: int,
    metric: core.Metric,
    sel: np.ndarray,
    pool: BufferPool,
) -> core.SearchResult:
    """``search`` over the rows ``sel`` (sorted) only: the same bound, every step in the
    selection's own numbering (``sel[j]`` is row ``j`` of it)."""
    m, n = sel.size, qr.count
    if m == 0:
        return _EMPTY
    if p.zero[0] or m <= top_k:  # every score 0 (ties by row), or every match a hit
        return _finish(qr, metric, q, sel[: min(m, top_k)] if p.zero[0] else sel, top_k, pool)
    k = top_k
    if m <= GATHER_SHARE * n:
        dots = engine.dots(np.ascontiguousarray(qr.codes[sel]), qr.code_sum[sel], p.u)
        raw = np.ascontiguousarray(dots[:, 0], dtype=np.float64)
    else:
        dots = engine.dots(qr.codes, qr.code_sum, p.u)
        raw = dots[:, 0][sel].astype(np.float64)
    step = max(1, m // max(SAMPLE_ROWS, 4 * k))
    sample = np.arange(0, m, step)
    lo, _ = _intervals(qr, p, np.zeros(sample.size, np.intp), sel[sample], raw[sample])
    floor = np.array([_kth(lo, k)])
    if metric == "euclidean":
        limit = _euclid_limit(qr, p, floor)[0]
        keep = raw * (-2 * p.alpha[0]) + qr.recon_sq[sel] <= limit
    else:
        keep = raw >= _thresholds(qr, p, floor)[0]
    local = np.flatnonzero(keep)
    zero_rows = qr.stats["zero_rows"]
    if metric == "cosine" and zero_rows.size:  # cosine exactly 0: never ruled out
        zero_local = np.searchsorted(sel, zero_rows)
        inside = zero_local < m
        zero_local = zero_local[inside][sel[zero_local[inside]] == zero_rows[inside]]
        local = np.union1d(local, zero_local)
    idx = sel[local]
    lo, hi = _intervals(qr, p, np.zeros(idx.size, np.intp), idx, raw[local])
    cand = idx[hi >= _kth(lo, k)]
    return _finish(qr, metric, q, cand, top_k, pool)


def _best_bound(qr: QuantizedRows, p: _Queries, v: np.ndarray) -> np.ndarray:
    """Per query, a ``lo`` that every row reaching ``v`` has: for dot, any row whose
    centred dot is at least ``v``; for cosine, any row whose scaled value
    (``_block_values``) is at least ``v``; for euclidean, any row whose
    ``recon_sq - 2 * alpha * (u . c)`` is at most ``v``. The per-row error terms take
    their largest values over the set, so no row needs to be named."""
    g = _gamma(qr.dim)
    st = qr.stats
    if p.metric == "euclidean":
        if p.err32 is not None:  # the row's exact value is at most v + err32
            v = v + p.err32
        e2 = v + p.qsq
        # twice the rounding term of ``_intervals``: ``v`` itself was rounded once more
        eps = 2 * p.dn * st["max_code_norm"]
        eps += 2 * g * (st["max_recon_sq"] + 2 * p.ad_max + p.qsq + np.abs(v))
        shift = st["max_residual"] + 2 * _U * p.qn
        return -(np.sqrt(np.maximum(e2 + eps, 0.0)) + shift) * (1 + g)
    if p.metric == "cosine":
        # v is a scaled value: the row's exact w is at least v - 4 * _U32 * |v| - z
        c_lo, _, spread = _cosine_terms(qr, p)
        w = v - 1e-6 * np.abs(v) - 2 * _scaled_error(qr)
        lo = c_lo + p.alpha * w / st["inv_shift"] - spread
        return lo - 1e-6 * (np.abs(lo) + np.abs(c_lo) + spread)
    ad = p.alpha * v
    a = p.c0 + ad
    e = p.qn * st["max_residual"] + p.dn * st["max_code_norm"]
    e += g * (p.qn * (st["offset_norm"] + st["max_norm"]) + p.ad_max + np.abs(a))
    return a - e


def _block_entries(
    qr: QuantizedRows, p: _Queries, band: _Band, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The (row, query) entries of one block that may still reach each query's top k,
    in row order, after raising ``band.floor`` from the block itself.

    ``values`` is the block's ``_block_values`` (smaller is better for euclidean). The
    floor comes from disjoint strided groups of rows (row ``i`` in group ``i % groups``):
    the k-th best of the groups' bests is reached by k distinct rows, and ``_best_bound``
    turns it into a ``lo`` those rows share. One pass over the block, no sort of it."""
    rows, nq = values.shape
    larger = p.metric != "euclidean"
    groups = min(rows, max(GROUPS, 4 * band.k))
    per = rows // groups
    body = values[: per * groups].reshape(per, groups * nq)
    best = body.max(axis=0) if larger else -body.min(axis=0)
    band.raise_floor(qr, p, best.reshape(groups, nq))
    if p.metric == "cosine":
        return core._nonzero(values >= _scaled_thresholds(qr, p, band.floor)[None, :])
    if larger:
        thr = np.clip(_thresholds(qr, p, band.floor), -(2.0**31), 2.0**31 - 1)
        return core._nonzero(values >= thr.astype(values.dtype)[None, :])
    return core._nonzero(values <= _euclid_values_limit(qr, p, band.floor)[None, :])


def _euclid_values_limit(qr: QuantizedRows, p: _Queries, floor: np.ndarray) -> np.ndarray:
    """``_euclid_limit`` for the batch's values: float32 values get it raised by their
    own error and rounded up to float32 (a comparison then stays in float32)."""
    limit = _euclid_limit(qr, p, floor)
    return limit if p.err32 is None else _up32(limit + p.err32)


def _block_values(
    qr: QuantizedRows,
    p: _Queries,
    engine: int8_scan.Engine,
    codes: np.ndarray,
    rows: np.ndarray | slice,
) -> tuple[np.ndarray, np.ndarray]:
    """A block's exact centred dots (rows, queries), and what its entries are picked by:
    the dots themselves (dot); each dot times its row's ``inv32`` in float32 (cosine: a
    row's norm then narrows its own threshold, where one threshold for every norm lets
    in ~6x the entries on rows of varied norms); ``recon_sq - 2 * alpha * dot``
    (euclidean, smaller is better: float32 where ``p.err32`` bounds its rounding)."""
    code_sum = qr.code_sum[rows]
    if p.metric == "cosine":
        return int8_scan.scaled_dots(engine, codes, code_sum, p.u, qr.stats["inv32"][rows])
    dots = engine.dots(codes, code_sum, p.u)
    if p.metric == "euclidean":  # float32 halves the bytes of every pass that follows
        dt = np.float64 if p.err32 is None else np.float32
        values = np.multiply(dots, (-2 * p.alpha).astype(dt)[None, :], dtype=dt)
        values += qr.recon_sq[rows].astype(dt, copy=False)[:, None]
        return dots, values
    return dots, dots


class _Band:
    """Per query, the (row, lo, hi) entries that can still reach the top k.

    Adding costs nothing but an append: the floors rise from each block's group bests
    (``_block_floor``), and the entries' own k-th best ``lo`` is taken per query only
    when they are pruned (at ``finish``, or when too many have piled up)."""

    def __init__(self, nq: int, k: int, cap: int) -> None:
        self.nq, self.k, self.cap = nq, k, cap
        self.floor = np.full(nq, -np.inf)
        self.overflow = np.zeros(nq, bool)
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._pending = 0
        self._group_bests = np.full((k, nq), -np.inf)
        self.q = self.row = np.empty(0, np.int64)

    def raise_floor(self, qr: QuantizedRows, p: _Queries, bests: np.ndarray) -> None:
        """Keep each query's k best group bests of every block so far (the groups of
        all blocks are disjoint: each names a distinct row) and raise its floor to what
        the k-th of them guarantees. ``bests`` is (groups, queries), larger better
        (euclidean passes its values negated)."""
        both = np.concatenate([self._group_bests, bests.astype(np.float64)])
        self._group_bests = -np.partition(-both, self.k - 1, axis=0)[: self.k]
        kth = self._group_bests.min(axis=0)
        seen = np.isfinite(kth)  # at least k groups so far
        if p.metric == "euclidean":
            kth = -kth
        bound = _best_bound(qr, p, np.where(seen, kth, 0.0))
        self.floor = np.maximum(self.floor, np.where(seen, bound, -np.inf))

    def add(self, q: np.ndarray, row: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        if not q.size:
            return
        self._parts.append((q, row, lo, hi))
        self._pending += q.size
        if self._pending > PRUNE_FROM:
            self._prune()

    def _prune(self) -> None:
        """Raise each floor to the k-th best ``lo`` of its entries, drop what falls under
        it, and hand queries left with too many entries to the single path. Entries end
        grouped by query (a stable sort: rows stay in the order they came, ascending)."""
        if not self._parts:
            return
        q, row, lo, hi = (np.concatenate(a) for a in zip(*self._parts, strict=True))
        order = np.argsort(q.astype(np.int16 if self.nq < 2**15 else np.int64), kind="stable")
        q, row, lo, hi = q[order], row[order], lo[order], hi[order]
        bounds = np.searchsorted(q, np.arange(self.nq + 1))
        for i in np.flatnonzero(np.diff(bounds) >= self.k):
            a, b = bounds[i], bounds[i + 1]
            self.floor[i] = max(self.floor[i], _kth(lo[a:b], self.k))
        keep = hi >= self.floor[q]
        self.overflow |= np.bincount(q[keep], minlength=self.nq) > self.cap
        keep &= ~self.overflow[q]
        self.floor[self.overflow] = np.inf
        self._parts = [(q[keep], row[keep], lo[keep], hi[keep])]
        self._pending = int(keep.sum())

    def finish(self) -> None:
        """Drop what the final floors rule out; entries end grouped by query, rows in
        order (the re-score reads each query's rows forward)."""
        self._prune()
        if self._parts:
            self.q, self.row = self._parts[0][0], self._parts[0][1]


#: Entries a batch band collects before dropping those under the floors.
PRUNE_FROM = 1 << 18
#: Disjoint row groups whose bests give a block's floor (at least 4k of them).
GROUPS = 128


def search_batch(
    qr: QuantizedRows,
    queries: np.ndarray,
    top_k: int,
    metric: core.Metric,
    *,
    pool: BufferPool | None = None,
    block_rows: int | None = None,
    mask: np.ndarray | None = None,
) -> list[core.SearchResult]:
    """``search`` for many queries: one integer gemm per row block (sized so its dots
    stay in cache for the passes that follow), a floor from the block's group bests,
    and a running band of the entries that beat it.

    With ``mask``, the blocks are blocks of the matching rows (their codes gathered a
    block at a time): group bests, floors and the band see matching rows only."""
    qm = np.asarray(queries, dtype=np.float32)
    if qm.ndim != 2:
        raise VectorFormatError("queries", f"expected a matrix (2-D), got shape {qm.shape}")
    core._check(qr.shape_check(metric), qm, top_k)
    nq = qm.shape[0]
    sel = _selected(qr, mask)
    n = qr.count if sel is None else sel.size  # rows that may be returned
    if nq == 0:
        return []
    if n == 0:
        return [_EMPTY] * nq
    pool = pool or default_pool()
    engine = int8_scan.engines("batch").pick(qr.dim)
    p = _prepare_queries(qr, qm, metric, engine.levels)
    k = min(top_k, n)
    band = _Band(nq, k, max(BAND_CAP, 4 * k))
    band.floor[p.zero] = np.inf  # answered below without a scan
    cap = block_rows or max(1024, BATCH_BLOCK_BYTES // (4 * nq))
    zero_rows = qr.stats["zero_rows"] if metric == "cosine" else np.empty(0, np.int64)
    if sel is not None and zero_rows.size:
        zero_rows = np.intersect1d(zero_rows, sel)
    if zero_rows.size:  # cosine exactly 0, never ruled out by the dot threshold
        live = np.flatnonzero(~p.zero)
        zq = np.repeat(live, zero_rows.size)
        zeros = np.zeros(zq.size)
        band.add(zq, np.tile(zero_rows, live.size), zeros, zeros)
    for start in range(0, n, cap):
        stop = min(n, start + cap)
        if sel is None:
            rows = np.arange(start, stop)
            dots, values = _block_values(qr, p, engine, qr.codes[start:stop], slice(start, stop))
        else:
            rows = sel[start:stop]
            codes = np.ascontiguousarray(qr.codes[rows])
            dots, values = _block_values(qr, p, engine, codes, rows)
        ri, qi = _block_entries(qr, p, band, values)
        if zero_rows.size:  # already in the band
            fresh = ~np.isin(rows[ri], zero_rows)
            ri, qi = ri[fresh], qi[fresh]
        if ri.size:
            lo, hi = _intervals(qr, p, qi, rows[ri], dots[ri, qi].astype(np.float64))
            band.add(qi, rows[ri], lo, hi)
    band.finish()
    results = _finish_batch(qr, metric, qm, band, top_k)
    for i in np.flatnonzero(band.overflow | p.zero):
        results[i] = search(qr, qm[i], top_k, metric, pool=pool, mask=mask)
    return results


def _finish_batch(
    qr: QuantizedRows, metric: core.Metric, queries: np.ndarray, band: _Band, top_k: int
) -> list[core.SearchResult]:
    """Each query's best ``top_k`` of its band rows by float64 (score, row index). The
    band comes grouped by query: each query re-scores only its own rows, a gather and a
    gemv, where one gemm of every band row against every query would do ~nq times the
    work."""
    nq = len(queries)
    results = [_EMPTY] * nq
    rows = band.row
    source = qr.rows
    if rows.size and not isinstance(source, np.ndarray):
        full = source.array(wait=rows.size > GATHER_MAX)
        if full is None:  # rows still arriving: gather the distinct band rows once
            unique, inverse = np.unique(rows, return_inverse=True)
            source, rows = source.gather(unique), inverse
        else:
            source = full
    bounds = np.searchsorted(band.q, np.arange(nq + 1))
    for i in np.flatnonzero(np.diff(bounds)):
        a, b = bounds[i], bounds[i + 1]
        x = source[rows[a:b]].astype(np.float64, order="C")
        q = queries[i].astype(np.float64)
        key, dist, sim = core._scored(x, None, q, metric, in_place=True)
        pick = np.lexsort((band.row[a:b], key))[:top_k]
        results[i] = core.SearchResult(band.row[a:b][pick].astype(np.int64), dist[pick], sim[pick])
    return results
