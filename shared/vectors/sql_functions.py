"""The scalar vector functions as SQL functions on an embedded SQLite connection.

``register(conn)`` makes ``SELECT vector_dot_product(a, b) FROM t`` and
``SELECT vector_centroid(v) FROM t GROUP BY g`` work inside the embedded database.

Only public ``sqlite3`` API is used (``create_function``, ``create_aggregate``). sqlite3
replaces a Python exception in a function with a fixed text, so each function records
its own -- e.g. ``vector_dot_product: b: dimension 3 does not match a: dimension 4`` --
in ``shared.db.function_errors`` before re-raising, and the database layer
(``shared.db.connection``) raises the ``sqlite3.OperationalError`` with that text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from shared.db import function_errors

from . import scalar
from .errors import VectorError

SCALARS: dict[str, tuple[int, Callable[..., Any]]] = {
    "vector_dot_product": (2, scalar.dot_product),
    "vector_cosine_similarity": (2, scalar.cosine_similarity),
    "vector_euclidean_distance": (2, scalar.euclidean_distance),
    "vector_add": (2, scalar.add),
    "vector_subtract": (2, scalar.subtract),
    "vector_scale": (2, scalar.scale),
    "vector_norm": (1, scalar.norm),
    "vector_normalize": (1, scalar.normalize),
    "vector_lerp": (3, scalar.lerp),
    "vector_softmax": (1, scalar.softmax),
    "vector_argmax": (1, scalar.argmax),
}


class _MeanVarianceJson(scalar.MeanVariance):
    """MeanVariance whose SQL value is JSON text ``{"count", "mean", "variance"}``."""

    def finalize(self) -> str | None:  # type: ignore[override]
        result = super().finalize()
        return None if result is None else json.dumps(result)


AGGREGATES: dict[str, type] = {
    "vector_centroid": scalar.Centroid,
    "vector_mean_variance": _MeanVarianceJson,
    "vector_geometric_median": scalar.GeometricMedian,
}


def register(conn: sqlite3.Connection) -> None:
    """Register every vector function (deterministic) and aggregate on ``conn``."""
    for name, (nargs, func) in SCALARS.items():
        conn.create_function(name, nargs, _recording(name, func), deterministic=True)
    for name, cls in AGGREGATES.items():
        conn.create_aggregate(name, 1, _recording_aggregate(name, cls))


def error_text(name: str, exc: BaseException) -> str:
    """The SQL error message for an exception raised by function ``name``: a vector
    error (or a builtin ValueError) already says what is wrong with the arguments;
    anything else also names its type, as it is a failure the caller did not cause."""
    if isinstance(exc, VectorError | ValueError):
        return f"{name}: {exc}"
    return f"{name}: {type(exc).__name__}: {exc}"


def _recording(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func``, recording its error text before sqlite3 replaces it."""

    def call(*args: Any) -> Any:
        try:
            return func(*args)
        except Exception as exc:
            function_errors.record(error_text(name, exc))
            raise

    call.__name__ = name
    return call


def _recording_aggregate(name: str, cls: type) -> type:
    """An aggregate class whose ``step`` and ``finalize`` record their error text."""

    class Recording(cls):  # type: ignore[misc, valid-type]
        def step(self, value: Any) -> None:
            try:
                super().step(value)
            except Exception as exc:
                function_errors.record(error_text(name, exc))
                raise

        def finalize(self) -> Any:
            try:
                return super().finalize()
            except Exception as exc:
                function_errors.record(error_text(name, exc))
                raise

    Recording.__name__ = Recording.__qualname__ = f"{cls.__name__}Sql"
    return Recording
