"""Wire formats for vectors and matrices, decoded to float32 numpy arrays.

A vector is a JSON array of numbers or ``{"b64": "<base64 of float32 LE bytes>"}`` (the
bytes SQL stores); a matrix is an array of arrays or ``{"b64": ..., "shape": [n, d]}``.
Everything a client can get wrong -- type, shape, NaN/Inf, size -- raises a ``VectorError``
naming the field, so the HTTP layer can answer 400 with the exception's message. Sizes are
checked before any large allocation, and lists are converted by numpy in one call after a
type check that runs in C (``map(type, row)``), not a Python loop per element.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from .errors import DimensionMismatchError, LimitExceededError, NonFiniteError, VectorFormatError
from .pool import BufferPool

F32LE = np.dtype("<f4")
_NUMBER_TYPES = frozenset({float, int})
Format = Literal["json", "b64"]


def _check_numbers(types: set[type], field: str) -> None:
    bad = types - _NUMBER_TYPES
    if bad:
        names = ", ".join(sorted(t.__name__ for t in bad))
        raise VectorFormatError(field, f"expected numbers, got {names}")


def _check_finite(arr: np.ndarray, field: str, rows: bool) -> None:
    if np.isfinite(arr).all():
        return
    pos = np.argwhere(~np.isfinite(arr))[0]
    where = f"{field}[{pos[0]}]" if rows else field
    idx = int(pos[-1])
    raise NonFiniteError(
        where, f"value at index {idx} is NaN, infinite or outside the float32 range"
    )


def _b64(text: object, field: str, max_bytes: int) -> bytes:
    if not isinstance(text, str):
        raise VectorFormatError(field, f"b64 must be a string, got {type(text).__name__}")
    if len(text) // 4 * 3 > max_bytes + 3:
        raise LimitExceededError(field, f"b64 payload is larger than the {max_bytes}-byte limit")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VectorFormatError(field, f"b64 is not valid base64 ({exc})") from None


def _from_le_bytes(raw: bytes, field: str) -> np.ndarray:
    if len(raw) % 4:
        raise VectorFormatError(
            field, f"byte length {len(raw)} is not a multiple of 4 (float32 values)"
        )
    return np.frombuffer(raw, dtype=F32LE)


def _into(
    flat: np.ndarray | Sequence[Any], shape: tuple[int, ...], pool: BufferPool | None
) -> np.ndarray:
    """Convert to float32 once; values beyond float32 become inf and are refused later."""
    with np.errstate(over="ignore"):
        if pool is None:
            arr = np.array(flat, dtype=np.float32)
            return arr.reshape(shape)
        out = pool.rent_array(shape, np.float32)
        try:
            out[...] = np.reshape(flat, shape) if isinstance(flat, np.ndarray) else flat
        except BaseException:
            pool.give_back(out)
            raise
        return out


def decode_vector(
    value: object,
    field: str,
    *,
    max_dim: int,
    allow_empty: bool = False,
    pool: BufferPool | None = None,
) -> np.ndarray:
    """A JSON array, ``{"b64": ...}`` or raw float32 LE bytes to a float32 ``(d,)`` array.

    With ``pool`` the result is rented from it: give it back when done.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) > max_dim * 4:
            dims = len(raw) // 4
            raise LimitExceededError(field, f"{dims} dimensions exceed the limit {max_dim}")
        flat: np.ndarray | list[Any] = _from_le_bytes(raw, field)
    elif isinstance(value, dict):
        if set(value) != {"b64"}:
            raise VectorFormatError(field, 'expected {"b64": "<base64 float32 LE>"}')
        flat = _from_le_bytes(_b64(value["b64"], field, max_dim * 4), field)
    elif isinstance(value, list):
        _check_numbers(set(map(type, value)), field)
        flat = value
    else:
        raise VectorFormatError(
            field, f'expected an array of numbers or {{"b64": ...}}, got {type(value).__name__}'
        )
    dim = len(flat)
    if dim > max_dim:
        raise LimitExceededError(field, f"{dim} dimensions exceed the limit {max_dim}")
    if dim == 0 and not allow_empty:
        raise VectorFormatError(field, "vector is empty")
    try:
        arr = _into(flat, (dim,), pool)
    except OverflowError:
        raise NonFiniteError(field, "a value is outside the float32 range") from None
    try:
        _check_finite(arr, field, rows=False)
    except NonFiniteError:
        if pool is not None:
            pool.give_back(arr)
        raise
    return arr


def _matrix_shape(value: object, field: str) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2):
        raise VectorFormatError(field, "shape must be [rows, dim]")
    if not all(type(s) is int and s >= 0 for s in value):
        raise VectorFormatError(field, "shape must be two non-negative integers")
    return value[0], value[1]


def decode_matrix(
    value: object,
    field: str,
    *,
    max_dim: int,
    max_rows: int,
    pool: BufferPool | None = None,
) -> np.ndarray:
    """An array of arrays or ``{"b64": ..., "shape": [n, d]}`` to a float32 ``(n, d)`` array.

    Rows must all have the first row's dimension; errors name the row (``vectors[3]``).
    With ``pool`` the result is rented from it: give it back when done.
    """
    if isinstance(value, dict):
        if set(value) != {"b64", "shape"}:
            raise VectorFormatError(field, 'expected {"b64": ..., "shape": [rows, dim]}')
        rows, dim = _matrix_shape(value["shape"], f"{field}.shape")
        _check_limits(rows, dim, field, max_dim=max_dim, max_rows=max_rows)
        raw = _b64(value["b64"], field, max_rows * max_dim * 4)
        flat = _from_le_bytes(raw, field)
        if flat.size != rows * dim:
            raise VectorFormatError(
                field,
                f"byte length {len(raw)} does not match shape [{rows}, {dim}] "
                f"(expected {rows * dim * 4})",
            )
        source: np.ndarray | list[Any] = flat
    elif isinstance(value, list):
        rows = len(value)
        if rows > max_rows:
            raise LimitExceededError(field, f"{rows} rows exceed the limit {max_rows}")
        if rows == 0:
            raise VectorFormatError(field, "matrix has no rows")
        dim = _check_rows(value, field, max_dim)
        source = value
    else:
        raise VectorFormatError(
            field, f'expected an array of arrays or {{"b64", "shape"}}, got {type(value).__name__}'
        )
    try:
        arr = _into(source, (rows, dim), pool)
    except OverflowError:
        raise NonFiniteError(field, "a value is outside the float32 range") from None
    try:
        _check_finite(arr, field, rows=True)
    except NonFiniteError:
        if pool is not None:
            pool.give_back(arr)
        raise
    return arr


def _check_limits(rows: int, dim: int, field: str, *, max_dim: int, max_rows: int) -> None:
    if rows > max_rows:
        raise LimitExceededError(field, f"{rows} rows exceed the limit {max_rows}")
    if dim > max_dim:
        raise LimitExceededError(field, f"{dim} dimensions exceed the limit {max_dim}")
    if rows == 0:
        raise VectorFormatError(field, "matrix has no rows")
    if dim == 0:
        raise VectorFormatError(field, "rows are empty")


def _check_rows(value: list[Any], field: str, max_dim: int) -> int:
    """Row types, equal lengths and element types, each checked by C-level iteration."""
    if set(map(type, value)) != {list}:
        i = next(i for i, row in enumerate(value) if not isinstance(row, list))
        raise VectorFormatError(
            f"{field}[{i}]", f"expected an array of numbers, got {type(value[i]).__name__}"
        )
    lengths = set(map(len, value))
    dim = len(value[0])
    if len(lengths) > 1:
        i = next(i for i, row in enumerate(value) if len(row) != dim)
        raise DimensionMismatchError.between(f"{field}[{i}]", len(value[i]), f"{field}[0]", dim)
    _check_limits(len(value), dim, field, max_dim=max_dim, max_rows=len(value))
    types: set[type] = set()
    for row in value:
        types.update(map(type, row))
    if not types <= _NUMBER_TYPES:
        for i, row in enumerate(value):
            _check_numbers(set(map(type, row)), f"{field}[{i}]")
    return dim


def encode_vector(arr: np.ndarray, fmt: Format = "json") -> list[float] | dict[str, str]:
    """A float32 vector to a JSON array or ``{"b64": ...}``."""
    vec = np.asarray(arr, dtype=np.float32)
    if vec.ndim != 1:
        raise VectorFormatError("vector", f"expected 1-D, got shape {vec.shape}")
    if fmt == "b64":
        return {"b64": base64.b64encode(vec.astype(F32LE, copy=False).tobytes()).decode("ascii")}
    if fmt != "json":
        raise ValueError(f"unknown format {fmt!r}")
    return vec.tolist()


def encode_matrix(arr: np.ndarray, fmt: Format = "json") -> list[list[float]] | dict[str, Any]:
    """A float32 matrix to an array of arrays or ``{"b64": ..., "shape": [n, d]}``."""
    mat = np.asarray(arr, dtype=np.float32)
    if mat.ndim != 2:
        raise VectorFormatError("matrix", f"expected 2-D, got shape {mat.shape}")
    if fmt == "b64":
        raw = np.ascontiguousarray(mat, dtype=F32LE).tobytes()
        return {"b64": base64.b64encode(raw).decode("ascii"), "shape": list(mat.shape)}
    if fmt != "json":
        raise ValueError(f"unknown format {fmt!r}")
    return mat.tolist()
