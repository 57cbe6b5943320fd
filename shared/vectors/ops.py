"""The vector API's operations: a named op applied to decoded operands.

Operands are a vector (d,) or a matrix (n, d). Metrics take a vector and a vector
(one number), a vector and a matrix in either order (one score per row), or two
matrices: `pairwise` (row i with row i) or `cross` (every pair, an n x m matrix).
Element-wise ops take equal shapes, or a matrix and a vector applied to every row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.vectors import kernels
from shared.vectors.errors import (
    DimensionMismatchError,
    LimitExceededError,
    NonFiniteError,
    VectorFormatError,
)

#: Most scores one `cross` request answers (1000 x 1000): its inputs are limited by rows,
#: but the product squares them: without this bound a 128 KB body can ask for a 693 MB reply.
MAX_CROSS_RESULTS = 1_000_000

METRICS = {
    "dot": (kernels.dot, kernels.dot_many, kernels.dot_pairwise, kernels.dot_cross),
    "cosine": (
        kernels.cosine,
        kernels.cosine_many,
        kernels.cosine_pairwise,
        kernels.cosine_cross,
    ),
    "euclidean": (
        kernels.euclidean,
        kernels.euclidean_many,
        kernels.euclidean_pairwise,
        kernels.euclidean_cross,
    ),
}
NEEDS_B = {"dot", "cosine", "euclidean", "add", "subtract", "lerp"}


def _require(value: Any, field: str, op: str) -> Any:
    if value is None:
        raise VectorFormatError(field, f"required for {op}")
    return value


def _metric(op: str, a: np.ndarray, b: np.ndarray, mode: str) -> float | np.ndarray:
    one, many, pairwise, cross = METRICS[op]
    if a.ndim == 1 and b.ndim == 1:
        return one(a, b)
    if a.ndim == 1:
        return many(a, b)
    if b.ndim == 1:
        if a.shape[1] != b.shape[0]:
            raise DimensionMismatchError.between("b", b.shape[0], "a", a.shape[1])
        return many(b, a)
    if mode == "cross":
        if a.shape[0] * b.shape[0] > MAX_CROSS_RESULTS:
            raise LimitExceededError(
                "b",
                f"mode 'cross' of {a.shape[0]} x {b.shape[0]} rows would answer "
                f"{a.shape[0] * b.shape[0]:,} scores; the limit is {MAX_CROSS_RESULTS:,} per "
                "request: send fewer rows of a or b at a time",
            )
        return cross(a, b)
    if a.shape != b.shape:
        raise DimensionMismatchError(
            "b",
            f"shape {list(b.shape)} does not match a: shape {list(a.shape)} "
            "(pairwise needs equal shapes; use mode 'cross' for every pair)",
        )
    return pairwise(a, b)


def _elementwise_shapes(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise DimensionMismatchError.between("b", b.shape[-1], "a", a.shape[-1])
    if a.ndim == 2 and b.ndim == 2 and a.shape[0] != b.shape[0]:
        raise DimensionMismatchError("b", f"{b.shape[0]} rows do not match a: {a.shape[0]} rows")


def apply(
    op: str,
    a: np.ndarray,
    b: np.ndarray | None = None,
    *,
    scalar: float | None = None,
    t: float | None = None,
    mode: str = "pairwise",
) -> float | int | None | np.ndarray:
    """The result of `op`: a Python number, None (argmax of nothing) or an array."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked below
        result = _compute(op, a, b, scalar, t, mode)
    check_finite(result)
    return result


def _compute(
    op: str,
    a: np.ndarray,
    b: np.ndarray | None,
    scalar: float | None,
    t: float | None,
    mode: str,
) -> Any:
    if op in METRICS:
        result: Any = _metric(op, a, _require(b, "b", op), mode)
    elif op in ("add", "subtract", "lerp"):
        b = _require(b, "b", op)
        _elementwise_shapes(a, b)
        if a.ndim == 1 and b.ndim == 2:
            a = np.broadcast_to(a, b.shape)
        if op == "add":
            result = kernels.add(a, b)
        elif op == "subtract":
            result = kernels.subtract(a, b)
        else:
            result = kernels.lerp(a, b, float(_require(t, "t", op)))
    elif op == "scale":
        result = kernels.scale(a, float(_require(scalar, "scalar", op)))
    elif op == "norm":
        result = kernels.norm(a)
    elif op == "normalize":
        result = kernels.normalize(a)
    elif op == "softmax":
        result = kernels.softmax(a)
    elif op == "argmax":
        result = kernels.argmax(a)
    else:
        raise VectorFormatError("op", f"unknown operation {op!r}")
    return result


def check_finite(result: Any) -> None:
    """JSON has no Infinity: an overflowing result is the caller's to fix."""
    if result is None:
        return
    if isinstance(result, np.ndarray):
        if result.dtype.kind == "f" and not np.isfinite(result).all():
            raise NonFiniteError("result", "overflows float32; scale the inputs down")
    elif isinstance(result, float) and not np.isfinite(result):
        raise NonFiniteError("result", "overflows float32; scale the inputs down")


def aggregate(op: str, vectors: np.ndarray) -> Any:
    if op == "centroid":
        return kernels.centroid(vectors)
    if op == "geometric_median":
        return kernels.geometric_median(vectors)
    if op == "mean_variance":
        return kernels.mean_variance(vectors)
    raise VectorFormatError("op", f"unknown aggregate {op!r}")
