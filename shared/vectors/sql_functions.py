"""The scalar vector functions as SQL functions on an embedded SQLite connection.

``register(conn)`` makes ``SELECT vector_dot_product(a, b) FROM t`` and
``SELECT vector_centroid(v) FROM t GROUP BY g`` work, as the SQL CLR functions did.

Why not only ``Connection.create_function``: Python's sqlite3 module replaces any exception
raised by a user function with the fixed text "user-defined function raised exception", so
the caller would never learn *which* argument was wrong and why. On CPython the functions
are therefore registered through SQLite's own C API (ctypes, on the very library and handle
the connection uses), which lets the error text -- e.g. ``vector_dot_product: b: dimension
3 does not match a: dimension 4`` -- reach the ``sqlite3.OperationalError``. Where that is
not possible (another Python implementation or a layout this code does not know), it falls
back to ``create_function``; the functions work the same, only the error text is generic.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import sqlite3
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import scalar

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
    """Register every vector function and aggregate on ``conn`` (deterministic)."""
    native = _native_api(conn)
    if native is not None:
        native.register_all(conn)
        return
    for name, (nargs, func) in SCALARS.items():
        conn.create_function(name, nargs, func, deterministic=True)
    for name, cls in AGGREGATES.items():
        conn.create_aggregate(name, 1, cls)


def error_text(name: str, exc: BaseException) -> str:
    """The SQL error message for an exception raised by function ``name``."""
    if isinstance(exc, ValueError):
        return f"{name}: {exc}"
    return f"{name}: {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- SQLite C API via ctypes

_SQLITE_OK = 0
_SQLITE_UTF8 = 1
_SQLITE_DETERMINISTIC = 0x800
_SQLITE_INTEGER, _SQLITE_FLOAT, _SQLITE_TEXT, _SQLITE_BLOB, _SQLITE_NULL = 1, 2, 3, 4, 5
_SQLITE_LIMIT_VARIABLE_NUMBER = 9
_TRANSIENT = ctypes.c_void_p(-1)

_XFUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p))
_XFINAL = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_NO_FUNC = ctypes.cast(None, _XFUNC)
_NO_FINAL = ctypes.cast(None, _XFINAL)


class _NativeApi:
    """The few SQLite C functions needed to define functions with proper error text."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        c = ctypes
        self.lib = lib
        sig = {
            "sqlite3_libversion": (c.c_char_p, []),
            "sqlite3_limit": (c.c_int, [c.c_void_p, c.c_int, c.c_int]),
            "sqlite3_create_function_v2": (
                c.c_int,
                [c.c_void_p, c.c_char_p, c.c_int, c.c_int, c.c_void_p]
                + [_XFUNC, _XFUNC, _XFINAL, c.c_void_p],
            ),
            "sqlite3_value_type": (c.c_int, [c.c_void_p]),
            "sqlite3_value_blob": (c.c_void_p, [c.c_void_p]),
            "sqlite3_value_text": (c.c_void_p, [c.c_void_p]),
            "sqlite3_value_bytes": (c.c_int, [c.c_void_p]),
            "sqlite3_value_double": (c.c_double, [c.c_void_p]),
            "sqlite3_value_int64": (c.c_int64, [c.c_void_p]),
            "sqlite3_result_null": (None, [c.c_void_p]),
            "sqlite3_result_double": (None, [c.c_void_p, c.c_double]),
            "sqlite3_result_int64": (None, [c.c_void_p, c.c_int64]),
            "sqlite3_result_blob": (None, [c.c_void_p, c.c_char_p, c.c_int, c.c_void_p]),
            "sqlite3_result_text": (None, [c.c_void_p, c.c_char_p, c.c_int, c.c_void_p]),
            "sqlite3_result_error": (None, [c.c_void_p, c.c_char_p, c.c_int]),
            "sqlite3_aggregate_context": (c.c_void_p, [c.c_void_p, c.c_int]),
        }
        for fname, (restype, argtypes) in sig.items():
            fn = getattr(lib, fname)
            fn.restype, fn.argtypes = restype, argtypes
        self._callbacks: dict[str, tuple[Any, Any, Any]] = {}
        self._states: dict[int, Any] = {}
        self._keys = itertools.count(1)
        self._build_callbacks()

    # -- values in and out

    def arg(self, value: int) -> Any:
        lib = self.lib
        kind = lib.sqlite3_value_type(value)
        if kind == _SQLITE_NULL:
            return None
        if kind == _SQLITE_BLOB:
            ptr = lib.sqlite3_value_blob(value)
            size = lib.sqlite3_value_bytes(value)
            return ctypes.string_at(ptr, size) if size else b""
        if kind == _SQLITE_INTEGER:
            return lib.sqlite3_value_int64(value)
        if kind == _SQLITE_FLOAT:
            return lib.sqlite3_value_double(value)
        ptr = lib.sqlite3_value_text(value)
        size = lib.sqlite3_value_bytes(value)
        return ctypes.string_at(ptr, size).decode("utf-8", "replace") if size else ""

    def result(self, ctx: int, value: Any) -> None:
        lib = self.lib
        if value is None:
            lib.sqlite3_result_null(ctx)
        elif isinstance(value, bytes):
            lib.sqlite3_result_blob(ctx, value, len(value), _TRANSIENT)
        elif isinstance(value, float):
            lib.sqlite3_result_double(ctx, value)
        elif isinstance(value, int):
            lib.sqlite3_result_int64(ctx, value)
        else:
            data = str(value).encode("utf-8")
            lib.sqlite3_result_text(ctx, data, len(data), _TRANSIENT)

    def error(self, ctx: int, name: str, exc: BaseException) -> None:
        self.lib.sqlite3_result_error(ctx, error_text(name, exc).encode("utf-8"), -1)

    # -- callbacks, built once per process and shared by all connections

    def _build_callbacks(self) -> None:
        for name, (_nargs, func) in SCALARS.items():
            self._callbacks[name] = (_XFUNC(self._scalar_cb(name, func)), _NO_FUNC, _NO_FINAL)
        for name, cls in AGGREGATES.items():
            step, final = self._aggregate_cbs(name, cls)
            self._callbacks[name] = (_NO_FUNC, _XFUNC(step), _XFINAL(final))

    def _scalar_cb(self, name: str, func: Callable[..., Any]) -> Callable[..., None]:
        def call(ctx: int, argc: int, argv: Any) -> None:
            try:
                self.result(ctx, func(*[self.arg(argv[i]) for i in range(argc)]))
            except BaseException as exc:  # must never escape into C
                self.error(ctx, name, exc)

        return call

    def _aggregate_cbs(
        self, name: str, cls: type
    ) -> tuple[Callable[..., None], Callable[..., None]]:
        states = self._states

        def step(ctx: int, argc: int, argv: Any) -> None:
            try:
                slot = ctypes.c_int64.from_address(self.lib.sqlite3_aggregate_context(ctx, 8))
                if slot.value == 0:
                    slot.value = next(self._keys)
                    states[slot.value] = cls()
                states[slot.value].step(self.arg(argv[0]))
            except BaseException as exc:  # must never escape into C
                self.error(ctx, name, exc)

        def final(ctx: int) -> None:
            try:
                ptr = self.lib.sqlite3_aggregate_context(ctx, 0)
                key = ctypes.c_int64.from_address(ptr).value if ptr else 0
                state = states.pop(key, None) if key else cls()
                self.result(ctx, state.finalize() if state is not None else None)
            except BaseException as exc:  # must never escape into C
                self.error(ctx, name, exc)

        return step, final

    def register_all(self, conn: sqlite3.Connection) -> None:
        db = _db_handle(conn)
        flags = _SQLITE_UTF8 | _SQLITE_DETERMINISTIC
        arity = {name: nargs for name, (nargs, _f) in SCALARS.items()}
        for name, (func, step, final) in self._callbacks.items():
            rc = self.lib.sqlite3_create_function_v2(
                db, name.encode(), arity.get(name, 1), flags, None, func, step, final, None
            )
            if rc != _SQLITE_OK:
                raise sqlite3.OperationalError(f"could not register {name} (SQLite code {rc})")


def _db_handle(conn: sqlite3.Connection) -> int:
    """The ``sqlite3*`` inside a CPython Connection: the first field after PyObject_HEAD."""
    handle = ctypes.c_void_p.from_address(id(conn) + object.__basicsize__).value
    if not handle:
        raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
    return handle


_NATIVE: _NativeApi | None = None
_NATIVE_FAILED = False
_NATIVE_LOCK = threading.Lock()


def _load_native() -> _NativeApi | None:
    global _NATIVE, _NATIVE_FAILED
    with _NATIVE_LOCK:
        if _NATIVE is None and not _NATIVE_FAILED:
            try:
                known = (3, 11) <= sys.version_info < (3, 14)
                if sys.implementation.name != "cpython" or not known:
                    raise OSError("unsupported interpreter")
                import _sqlite3

                api = _NativeApi(ctypes.CDLL(_sqlite3.__file__))
                if api.lib.sqlite3_libversion().decode() != sqlite3.sqlite_version:
                    raise OSError("ctypes sees a different SQLite library")
                _NATIVE = api
            except (OSError, AttributeError, ImportError):
                _NATIVE_FAILED = True
    return _NATIVE


def _native_api(conn: sqlite3.Connection) -> _NativeApi | None:
    """The native API if it is usable *for this connection* (handle layout cross-checked)."""
    api = _load_native()
    if api is None or not isinstance(conn, sqlite3.Connection):
        return None
    old = conn.getlimit(_SQLITE_LIMIT_VARIABLE_NUMBER)
    probe = max(1, old - 7)
    try:
        conn.setlimit(_SQLITE_LIMIT_VARIABLE_NUMBER, probe)
        seen = api.lib.sqlite3_limit(_db_handle(conn), _SQLITE_LIMIT_VARIABLE_NUMBER, -1)
    finally:
        conn.setlimit(_SQLITE_LIMIT_VARIABLE_NUMBER, old)
    return api if seen == probe else None
