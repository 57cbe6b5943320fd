"""POST /api/vectors/{op} and /api/vectors/aggregate/{op}: the SIMD kernels over HTTP."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.http.errors import RequestError, handle_errors
from shared.http.requests import read_json
from shared.http.responses import json_response
from shared.http.routing import http_route
from shared.vectors.shapes import (
    AGGREGATE_OPS,
    VECTOR_OPS,
    AggregateRequest,
    AggregateResponse,
    VectorOpRequest,
    VectorOpResponse,
)

bp = func.Blueprint()


def timed_op(fn: Callable[[func.HttpRequest], func.HttpResponse]) -> Callable:
    """Record hartonomous.vector.duration for each request, failed ones too, by `op`
    (`aggregate/<op>` for aggregates; an unknown op is recorded as `unknown`)."""

    @functools.wraps(fn)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        from shared.telemetry import record

        started = time.perf_counter()
        try:
            return fn(req)
        finally:
            op = req.route_params.get("op", "")
            known = AGGREGATE_OPS if fn.__name__ == "vector_aggregate" else VECTOR_OPS
            op = op if op in known else "unknown"
            if fn.__name__ == "vector_aggregate":
                op = f"aggregate/{op}"
            record(
                "hartonomous.vector.duration", (time.perf_counter() - started) * 1000, {"op": op}
            )

    return wrapper


def _op(req: func.HttpRequest, allowed: tuple[str, ...]) -> str:
    op = req.route_params.get("op", "")
    if op not in allowed:
        raise RequestError(
            404, "unknown_operation", f"op: {op!r} is not one of {', '.join(allowed)}", "op"
        )
    return op


def _decode_any(value: Any, field: str, max_dim: int, max_rows: int, pool: Any) -> Any:
    """A matrix when it looks like one (array of arrays, or b64 with a shape), else a vector.

    Decoded into a buffer rented from `pool`: the caller gives it back."""
    from shared.vectors import codec

    is_matrix = (isinstance(value, list) and bool(value) and isinstance(value[0], list)) or (
        isinstance(value, dict) and "shape" in value
    )
    if is_matrix:
        return codec.decode_matrix(value, field, max_dim=max_dim, max_rows=max_rows, pool=pool)
    return codec.decode_vector(value, field, max_dim=max_dim, pool=pool)


def _encode(result: Any, fmt: str) -> Any:
    import numpy as np

    from shared.vectors import codec

    if isinstance(result, np.ndarray):
        if result.dtype.kind in "iu":
            return result.tolist()
        if result.ndim == 1:
            return codec.encode_vector(result, fmt)
        return codec.encode_matrix(result, fmt)
    return result


@http_route(
    bp,
    "vectors/{op}",
    ["POST"],
    summary="One vector operation: one-to-one, one-to-many, pairwise or cross.",
    tags=("vectors",),
    request=VectorOpRequest,
    response=VectorOpResponse,
    errors=(400, 404),
    path_enums={"op": VECTOR_OPS},
)
@handle_errors
@timed_op
def vector_op(req: func.HttpRequest) -> func.HttpResponse:
    from shared.settings import get_settings
    from shared.vectors import ops as vector_ops
    from shared.vectors.pool import default_pool

    op = _op(req, VECTOR_OPS)
    body = read_json(req, VectorOpRequest)
    s = get_settings()
    pool = default_pool()
    rented = []
    try:
        a = _decode_any(body.a, "a", s.max_vector_dim, s.max_batch_rows, pool)
        rented.append(a)
        b = None
        if body.b is not None and op in vector_ops.NEEDS_B:
            b = _decode_any(body.b, "b", s.max_vector_dim, s.max_batch_rows, pool)
            rented.append(b)
        result = vector_ops.apply(op, a, b, scalar=body.scalar, t=body.t, mode=body.mode)
        encoded = _encode(result, body.format)
    finally:
        for arr in rented:
            pool.give_back(arr)
    return json_response(VectorOpResponse(op=op, result=encoded).model_dump())


@http_route(
    bp,
    "vectors/aggregate/{op}",
    ["POST"],
    summary="Aggregate many vectors: centroid, mean_variance (Welford), geometric_median.",
    tags=("vectors",),
    request=AggregateRequest,
    response=AggregateResponse,
    errors=(400, 404),
    path_enums={"op": AGGREGATE_OPS},
)
@handle_errors
@timed_op
def vector_aggregate(req: func.HttpRequest) -> func.HttpResponse:
    import numpy as np

    from shared.settings import get_settings
    from shared.vectors import codec
    from shared.vectors import ops as vector_ops
    from shared.vectors.pool import default_pool

    op = _op(req, AGGREGATE_OPS)
    body = read_json(req, AggregateRequest)
    s = get_settings()
    pool = default_pool()
    m = codec.decode_matrix(
        body.vectors, "vectors", max_dim=s.max_vector_dim, max_rows=s.max_batch_rows, pool=pool
    )
    try:
        result = vector_ops.aggregate(op, m)
        rows = int(m.shape[0])
    finally:
        pool.give_back(m)
    if op == "mean_variance":
        # checked as sent: a float64 variance can be finite and still overflow float32
        with np.errstate(over="ignore"):  # an overflow is refused just below
            mean, variance = result.mean.astype("float32"), result.variance.astype("float32")
        vector_ops.check_finite(mean)
        vector_ops.check_finite(variance)
        out: Any = {
            "count": result.count,
            "mean": _encode(mean, body.format),
            "variance": _encode(variance, body.format),
        }
    else:
        vector_ops.check_finite(result)
        out = _encode(result, body.format)
    reply = AggregateResponse(op=op, count=rows, result=out)
    return json_response(reply.model_dump())
