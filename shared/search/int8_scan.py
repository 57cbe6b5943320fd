"""Exact integer dot products of 8-bit codes with 8-bit queries, the scan of the
compressed search.

Rows are uint8 codes ``s = c + 127`` (centred codes ``c`` in [-127, 127]); a query is
int8 ``u`` with ``|u| <= engine.levels``. Every engine returns the centred products
``c . u`` exactly: the search's interval bounds assume exact integers, so one wrong
product would change the answer without any sign of it.

Integer SIMD differs between the CPUs Azure runs on. Without VNNI (AVX2 only, and
AVX-512 before Cascade Lake), u8 x s8 gemm kernels (onnxruntime's MLAS among them) use
VPMADDUBSW, which adds each pair of adjacent u8 x s8 products into a *saturating*
int16: 2 x 254 x 127 = 64,516 > 32,767, so full-range codes come out wrong (by 6.1e6 at
d = 384). With VNNI, VPDPBUSD adds four products straight into int32. So each engine is
checked once per process, before it serves: it runs on extreme codes (every code at the
ends of its range, both signs, dimensions up to the largest allowed, the shapes the
scan uses) against numpy int64. One that fails is not used, the next one is, and the log
says which runs and why. The last engine of each list is exact on every CPU.

A cosine batch also needs each dot times its row's inverse norm (``scaled_dots``): the
onnxruntime engines compute it in the gemm's own session (a per-row DequantizeLinear on
the gemm's threads), the others in numpy. A check covers those values too: they must be
the float32 product of the exact dot and the scale, rounded to nearest; where they are
not, the engine still serves its dots and numpy scales them.

One query, in order of preference:

* ``simsimd-u8``: ``simsimd.cdist`` over the uint8 rows with the query as uint8
  ``u + 127`` (a streaming dot per row; ~4x faster than the float32 gemv because it
  reads a quarter of the bytes). Largest intermediate: a product 254 x 254 = 64,516,
  which fits no 16-bit lane, so its kernels add in 32 bits; the int32 total is at most
  64,516 d, below 2**31 for d <= 33,285 (simsimd's accumulator wraps past that, so wider
  sets use the next).
* ``numpy-f32``: below.

A batch, in order of preference:

* ``onnxruntime-u8s8``: onnxruntime's ``MatMulInteger`` (MLAS u8 x s8 gemm, the rows
  as the left operand with zero point 127), which reuses each row for every query; 8-bit
  queries. Largest intermediate with VNNI: four products, at most 4 x 254 x 127 =
  129,032, added into int32; the int32 total is at most 32,258 d (d <= 66,571). Without
  VNNI the pair sum saturates (above) and the check rules it out.
* ``onnxruntime-u8s8-7bit``: the same gemm with 7-bit queries (``|u| <= 63``): the
  largest pair a saturating kernel adds into int16 is 2 x 254 x 63 = 32,004 <= 32,767,
  so it is exact with and without VNNI by construction; the int32 total is at most
  16,002 d (d <= 134,200). The coarser query widens each row's interval: at 100k x 384
  about 2.6x as many rows reach the float64 re-score as with 8-bit queries.
* ``numpy-f32``: the codes converted to float32 block by block and multiplied with
  numpy's BLAS over slices of at most 2**24 / (127 x levels) dimensions, so every
  partial sum is an integer below 2**24 (exact in float32 whatever the order of the
  adds); the slices are summed in int64. Exact on every CPU, and the slowest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from shared.search.kernel_sessions import kernel_session
from shared.settings import usable_cores

if TYPE_CHECKING:
    from onnx import GraphProto

log = logging.getLogger(__name__)

#: Codes are stored as uint8 ``c + CENTER`` for centred codes ``c`` in [-127, 127].
CENTER = 127
#: The largest vector dimension the settings accept (``MAX_VECTOR_DIM``): engines are
#: checked up to here, or up to their own ``max_dim`` where that is smaller.
LARGEST_DIM = 65_536
#: Rows per block of the float32 fallback (a few MiB of float32 at a time).
_F32_BLOCK_ROWS = 2048
#: Threads of the batch gemm (2 cores here; under a neighbour's load one thread won).
THREADS = min(2, usable_cores())

Dots = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
ScaledDots = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]
]


@dataclass(frozen=True)
class Engine:
    """One way to compute centred integer dots.

    ``dots(codes, code_sum, u)``: uint8 ``codes`` (n, d), ``code_sum`` (n,) float64
    ``127 * sum(codes[i])``, int8 ``u`` (q, d) with ``|u| <= levels``; returns the exact
    ``(codes - 127) @ u.T`` (n, q) as int32 or float64. ``by_construction``: no CPU
    should fail its check (one that does is worth a warning, not just a note).
    ``scaled``: ``scaled_dots`` in one pass, where the engine has a way to."""

    name: str
    levels: int
    max_dim: int
    dots: Dots
    by_construction: bool = True
    scaled: ScaledDots | None = None


#: Rows from which the one-query scan is split over ``THREADS`` threads: simsimd scans
#: on one thread, while the float32 gemv it competes with runs on all of them.
SPLIT_ROWS = 65_536
_pool_lock = threading.Lock()
_pool: list[ThreadPoolExecutor] = []


def _threads() -> ThreadPoolExecutor:
    with _pool_lock:
        if not _pool:
            _pool.append(ThreadPoolExecutor(THREADS, thread_name_prefix="int8-scan"))
        return _pool[0]


def _simsimd_dots(codes: np.ndarray, code_sum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """No ``out=``: simsimd 6.5's cdist drops a reference to None on every call with
    ``out``, which crashed the interpreter after some 10^4 calls. simsimd releases the
    GIL while it scans, so parts of the rows scan on several threads at once."""
    import simsimd

    shifted = (u.astype(np.int16) + CENTER).astype(np.uint8)
    n = len(codes)
    if n < SPLIT_ROWS or THREADS < 2:
        raw = np.asarray(simsimd.cdist(shifted, codes, metric="dot"), dtype=np.float64).T
    else:
        cuts = np.linspace(0, n, THREADS + 1).astype(int)
        parts = _threads().map(
            lambda a, b: np.asarray(simsimd.cdist(shifted, codes[a:b], metric="dot")),
            cuts[:-1],
            cuts[1:],
        )
        raw = np.concatenate(list(parts), axis=1).astype(np.float64, copy=False).T
    # s . (u + 127) = c . u + 127 sum(s) + 127 sum(u), with s = c + 127
    raw -= code_sum[:, None]
    raw -= CENTER * u.sum(axis=1, dtype=np.int64).astype(np.float64)[None, :]
    return raw


def _onnx_dots(codes: np.ndarray, code_sum: np.ndarray, u: np.ndarray) -> np.ndarray:
    session = kernel_session("int8_scan", _int8_graph, THREADS)
    return session.run(None, {"A": codes, "B": np.ascontiguousarray(u.T)})[0]  # type: ignore[return-value]


def _onnx_scaled_dots(
    codes: np.ndarray, code_sum: np.ndarray, u: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    session = kernel_session("int8_scan_scaled", _scaled_graph, THREADS)
    inputs = {"A": codes, "B": np.ascontiguousarray(u.T), "S": scale}
    dots, values = session.run(None, inputs)
    return dots, values  # type: ignore[return-value]


def _int8_graph() -> GraphProto:
    from onnx import TensorProto, helper

    return helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "zero"], ["Y"])],
        "int8_scan",
        [
            helper.make_tensor_value_info("A", TensorProto.UINT8, [None, None]),
            helper.make_tensor_value_info("B", TensorProto.INT8, [None, None]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [None, None])],
        initializer=[helper.make_tensor("zero", TensorProto.UINT8, [], [CENTER])],
    )


def _scaled_graph() -> GraphProto:
    """``_int8_graph`` plus V: each row of Y as float32 times its S (n,). A per-row
    DequantizeLinear does both in one pass (a cast and a broadcast multiply take two, and
    twice the time: 0.6-0.8 ms against 0.2-0.4 on 65,536 rows)."""
    from onnx import TensorProto, helper

    graph = _int8_graph()
    graph.node.append(helper.make_node("DequantizeLinear", ["Y", "S"], ["V"], axis=0))
    graph.input.append(helper.make_tensor_value_info("S", TensorProto.FLOAT, [None]))
    graph.output.append(helper.make_tensor_value_info("V", TensorProto.FLOAT, [None, None]))
    return graph


def scaled_dots(
    engine: Engine, codes: np.ndarray, code_sum: np.ndarray, u: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``engine``'s dots, and beside them ``float32(dot) * scale[row]`` as float32 (each
    operation rounded to nearest), ``scale`` being float32 (n,)."""
    if engine.scaled is not None:
        return engine.scaled(codes, code_sum, u, scale)
    dots = engine.dots(codes, code_sum, u)
    values = np.multiply(
        dots.astype(np.float32), scale[:, None], dtype=np.float32, casting="unsafe"
    )
    return dots, values


def f32_dots(codes: np.ndarray, code_sum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The exact fallback: float32 BLAS over slices short enough that no partial sum
    leaves the integers float32 holds exactly (see the module docstring)."""
    n, d = codes.shape
    top = max(1, int(np.abs(u.astype(np.int16)).max(initial=1)))
    width = max(1, (1 << 24) // (CENTER * top))
    uf = u.T.astype(np.float32)
    out = np.empty((n, u.shape[0]), np.int64 if d > width else np.int32)
    for start in range(0, n, _F32_BLOCK_ROWS):
        block = codes[start : start + _F32_BLOCK_ROWS].astype(np.float32)
        block -= CENTER
        if d <= width:
            out[start : start + len(block)] = block @ uf
            continue
        acc = np.zeros((len(block), u.shape[0]), np.int64)
        for s in range(0, d, width):
            acc += (block[:, s : s + width] @ uf[s : s + width]).astype(np.int64)
        out[start : start + len(block)] = acc
    return out


SIMSIMD_U8 = Engine("simsimd-u8", 127, 33_285, _simsimd_dots)
ONNX_U8S8 = Engine(
    "onnxruntime-u8s8", 127, 66_571, _onnx_dots, by_construction=False, scaled=_onnx_scaled_dots
)
ONNX_U8S8_7BIT = Engine("onnxruntime-u8s8-7bit", 63, 134_200, _onnx_dots, scaled=_onnx_scaled_dots)
NUMPY_F32 = Engine("numpy-f32", 127, LARGEST_DIM, f32_dots)

#: Candidates in order of preference, per use; the last of each is exact everywhere.
ONE: tuple[Engine, ...] = (SIMSIMD_U8, NUMPY_F32)
BATCH: tuple[Engine, ...] = (ONNX_U8S8, ONNX_U8S8_7BIT, NUMPY_F32)

#: Dimensions the check covers: odd and even tails, a typical width, the largest.
CHECK_DIMS = (1, 3, 31, 64, 383, 1536)


def extreme_cases(dim: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and queries at the ends of their ranges: all high, all low, alternating
    signs, and blocks of each, so every adjacent pair and quad a kernel adds meets both
    the largest positive and the largest negative products."""
    hi, lo = 2 * CENTER, 0
    pattern = np.arange(dim)
    rows = np.stack(
        [
            np.full(dim, hi),
            np.full(dim, lo),
            np.where(pattern % 2 == 0, hi, lo),
            np.where(pattern % 4 < 2, hi, lo),
            np.where(pattern < dim // 2, hi, lo),
            np.full(dim, CENTER),
            np.where(pattern % 3 == 0, lo, hi),
        ]
    ).astype(np.uint8)
    queries = np.stack(
        [
            np.full(dim, levels),
            np.full(dim, -levels),
            np.where(pattern % 2 == 0, levels, -levels),
            np.where(pattern % 4 < 2, -levels, levels),
            np.where(pattern % 3 == 0, levels, -levels),
        ]
    ).astype(np.int8)
    return rows, queries


def check(engine: Engine, dims: Sequence[int] | None = None) -> str | None:
    """None if ``engine`` computes every extreme case exactly, else what went wrong.

    Each dimension runs with one query and with several, and the scan's own shape (a
    thousand rows, 64 queries) runs at d = 384: gemm libraries pick kernels by shape."""
    top = min(engine.max_dim, LARGEST_DIM)
    chosen = sorted({*(d for d in CHECK_DIMS if d <= top), top} if dims is None else dims)
    cases = []
    for dim in chosen:
        rows, queries = extreme_cases(dim, engine.levels)
        cases += [(dim, rows, queries), (dim, rows, queries[:1])]
    if top >= 384:
        rows, queries = extreme_cases(384, engine.levels)
        cases.append((384, np.tile(rows, (147, 1)), np.tile(queries, (13, 1))[:64]))
    for dim, rows, queries in cases:
        code_sum = CENTER * rows.sum(axis=1, dtype=np.int64).astype(np.float64)
        want = (rows.astype(np.int64) - CENTER) @ queries.T.astype(np.int64)
        try:
            got = np.asarray(engine.dots(rows, code_sum, queries))
        except Exception as exc:  # an engine that cannot run is not used either
            return f"d={dim}: {type(exc).__name__}: {exc}"
        if got.shape != want.shape:
            return f"d={dim}: shape {got.shape}, expected {want.shape}"
        error = np.abs(got.astype(np.float64) - want).max()
        if error:
            return f"d={dim}: off by up to {error:,.0f}"
    return None


def check_scaled(engine: Engine) -> str | None:
    """None if ``engine.scaled`` gives the exact dots and, beside them, the float32
    products numpy's cast and multiply give, bit for bit, on the extreme cases at
    d = 384 with scales of every magnitude (a subnormal one: a CPU set to flush those to
    zero fails), else what went wrong."""
    assert engine.scaled is not None
    rows, queries = extreme_cases(384, engine.levels)
    rows = np.tile(rows, (147, 1))
    code_sum = CENTER * rows.sum(axis=1, dtype=np.int64).astype(np.float64)
    want = (rows.astype(np.int64) - CENTER) @ queries.T.astype(np.int64)
    scale = np.resize(np.float32([1.0, 0.7, 3.1e-3, 2.5e7, 1e-42, 0.0, 1e-20, 0.5]), len(rows))
    try:
        dots, values = engine.scaled(rows, code_sum, queries, scale)
    except Exception as exc:  # the plain dots still serve
        return f"{type(exc).__name__}: {exc}"
    if not np.array_equal(np.asarray(dots, np.float64), want):
        return "its dots differ from the exact ones"
    expect = np.multiply(want.astype(np.float32), scale[:, None], dtype=np.float32)
    got = np.asarray(values)
    if got.dtype != np.float32 or not np.array_equal(got, expect):
        return "its values are not the float32 products rounded to nearest"
    return None


@dataclass(frozen=True)
class Selection:
    """The engines that serve, each checked, in order of preference; ``pick`` gives
    the first whose bound covers the dimension."""

    engines: tuple[Engine, ...]

    def pick(self, dim: int) -> Engine:
        for engine in self.engines:
            if dim <= engine.max_dim:
                return engine
        return self.engines[-1]


def select(use: str, candidates: Sequence[Engine]) -> Selection:
    """Check each candidate, keep those that pass, log the choice. The last candidate
    must pass: it is the one that is exact everywhere."""
    passed = []
    for engine in candidates:
        problem = check(engine)
        if problem is None:
            scaled_problem = check_scaled(engine) if engine.scaled is not None else None
            if scaled_problem is not None:
                log.warning(
                    "compressed search (%s): engine %s scales its dots inexactly on this"
                    " CPU (%s); numpy scales them",
                    use,
                    engine.name,
                    scaled_problem,
                )
                engine = replace(engine, scaled=None)
            passed.append(engine)
            continue
        log.log(
            logging.WARNING if engine.by_construction else logging.INFO,
            "compressed search (%s): engine %s is not exact on this CPU (%s); not used",
            use,
            engine.name,
            problem,
        )
    if not passed or passed[-1].name != candidates[-1].name:
        raise RuntimeError(f"compressed search ({use}): the exact fallback failed its check")
    first = passed[0]
    log.info(
        "compressed search (%s): engine %s (checked exact up to d=%d)%s",
        use,
        first.name,
        min(first.max_dim, LARGEST_DIM),
        "" if first.name == candidates[0].name else f", in place of {candidates[0].name}",
    )
    return Selection(tuple(passed))


_selected: dict[str, Selection] = {}
_select_lock = threading.Lock()


def engines(use: str) -> Selection:
    """The checked engines for ``use`` ("one" or "batch"), chosen once per process."""
    got = _selected.get(use)
    if got is not None:
        return got
    with _select_lock:
        got = _selected.get(use)
        if got is None:
            got = select(use, ONE if use == "one" else BATCH)
            _selected[use] = got
    return got
