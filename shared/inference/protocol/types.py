"""Open Inference Protocol (KServe v2) tensors: request/response shapes, decoding, encoding.

One declaration per wire shape (pydantic), so the same models validate a request body,
produce 400 messages and feed the OpenAPI document. Decoding checks a request against the
model's tensor specs and names the input and the difference on any mismatch; encoding keeps
output arrays as flat numpy views until the response is serialised, so the one copy into
JSON lists happens once, at the edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StrictBool

from shared.registry.errors import InferenceInputError
from shared.vectors.pool import BufferPool

PLATFORM = "onnx_onnxv1"

# -- datatypes ---------------------------------------------------------------------------

# OIP datatype -> (numpy dtype, ONNX TensorProto enum, onnxruntime type string)
DATATYPES: dict[str, tuple[np.dtype, int, str]] = {
    "BOOL": (np.dtype(np.bool_), 9, "tensor(bool)"),
    "UINT8": (np.dtype(np.uint8), 2, "tensor(uint8)"),
    "UINT16": (np.dtype(np.uint16), 4, "tensor(uint16)"),
    "UINT32": (np.dtype(np.uint32), 12, "tensor(uint32)"),
    "UINT64": (np.dtype(np.uint64), 13, "tensor(uint64)"),
    "INT8": (np.dtype(np.int8), 3, "tensor(int8)"),
    "INT16": (np.dtype(np.int16), 5, "tensor(int16)"),
    "INT32": (np.dtype(np.int32), 6, "tensor(int32)"),
    "INT64": (np.dtype(np.int64), 7, "tensor(int64)"),
    "FP16": (np.dtype(np.float16), 10, "tensor(float16)"),
    "FP32": (np.dtype(np.float32), 1, "tensor(float)"),
    "FP64": (np.dtype(np.float64), 11, "tensor(double)"),
    "BYTES": (np.dtype(object), 8, "tensor(string)"),
}
ONNX_TO_OIP: dict[int, str] = {v[1]: k for k, v in DATATYPES.items()}
ORT_TO_OIP: dict[str, str] = {v[2]: k for k, v in DATATYPES.items()}
_NUMPY_TO_OIP: dict[np.dtype, str] = {v[0]: k for k, v in DATATYPES.items() if k != "BYTES"}


def datatype_from_ort(type_str: str) -> str:
    """OIP name for an onnxruntime type string; unmapped tensors give their ONNX name."""
    if type_str in ORT_TO_OIP:
        return ORT_TO_OIP[type_str]
    if type_str.startswith("tensor(") and type_str.endswith(")"):
        return type_str[len("tensor(") : -1].upper()
    return type_str  # seq(...), map(...), optional(...): not a tensor


def datatype_of(arr: np.ndarray) -> str:
    """OIP datatype of an output array (strings and objects are BYTES)."""
    name = _NUMPY_TO_OIP.get(arr.dtype)
    if name is not None:
        return name
    return "BYTES" if arr.dtype.kind in "OUS" else arr.dtype.name.upper()


Dim = int | str  # int >= 0 fixed, -1 unknown, str a symbolic (named) dimension


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the model declares it."""

    name: str
    datatype: str
    shape: tuple[Dim, ...] | None  # None: rank unknown
    is_tensor: bool = True

    def oip_shape(self) -> list[int]:
        """The shape as OIP metadata shows it: -1 for every variable dimension."""
        if self.shape is None:
            return [-1]
        return [d if isinstance(d, int) and d >= 0 else -1 for d in self.shape]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, keeping symbolic dimension names (for stored metadata)."""
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": None if self.shape is None else list(self.shape),
        }


def normalize_dim(d: Any) -> Dim:
    """onnxruntime/ONNX dims: ints stay, names stay, anything unknown becomes -1."""
    if isinstance(d, str) and d:
        return d
    if isinstance(d, int) and d >= 0:
        return d
    return -1


# -- wire shapes -------------------------------------------------------------------------


def _as_list(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


# Output data stays a flat numpy view until serialised (one copy, at the edge).
FlatData = Annotated[Any, PlainSerializer(_as_list, return_type=Any, when_used="always")]


class _Wire(BaseModel):
    model_config = ConfigDict(protected_namespaces=(), arbitrary_types_allowed=True)


class RequestInput(_Wire):
    name: str
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str
    # None when the tensor's bytes follow the JSON (binary data extension, oip_binary.py)
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class RequestOutput(_Wire):
    name: str
    parameters: dict[str, Any] | None = None


class RepositoryIndexRequest(BaseModel):
    """The body of the repository index request; keys other than ``ready`` are ignored,
    as Triton does."""

    ready: StrictBool = False


class InferRequest(_Wire):
    id: str | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None
    parameters: dict[str, Any] | None = None


class ResponseOutput(_Wire):
    name: str
    shape: list[int]
    datatype: str
    data: FlatData = None  # None when the output travels as raw bytes after the JSON
    parameters: dict[str, Any] | None = None


class InferResponse(_Wire):
    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


W = TypeVar("W", bound=BaseModel)


def built(cls: type[W], values: dict[str, Any]) -> W:
    """``cls.model_construct(**values)`` when ``values`` gives every field, in declaration
    order, of a model with no aliases, extras, private attributes or post-init (the wire
    shapes here): the same instance without model_construct's per-field loop, which is a
    third of encoding a small model's outputs. tests/inference/protocol/test_oip.py holds
    the two equal, so a pydantic that stores instances differently fails there."""
    m = cls.__new__(cls)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", set(values))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


class MetadataTensor(_Wire):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(_Wire):
    name: str
    versions: list[str]
    platform: str = PLATFORM
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


def model_metadata(
    name: str, versions: Iterable[str], inputs: Iterable[TensorSpec], outputs: Iterable[TensorSpec]
) -> dict[str, Any]:
    """The `GET v2/models/{name}` body; only tensor outputs are listed (others cannot be served)."""

    def tensors(specs: Iterable[TensorSpec]) -> list[MetadataTensor]:
        return [
            MetadataTensor(name=s.name, datatype=s.datatype, shape=s.oip_shape())
            for s in specs
            if s.is_tensor
        ]

    return ModelMetadata(
        name=name, versions=list(versions), inputs=tensors(inputs), outputs=tensors(outputs)
    ).model_dump()


# -- decoding ----------------------------------------------------------------------------

# Below this many elements an FP32 input is a fresh array: renting from the pool (locks,
# bookkeeping) costs more than allocating a few bytes; above it the pool saves the
# allocation and page faults of a large buffer on every request.
POOL_MIN_ELEMENTS = 4096
# Up to this many elements the range check reads Python floats: two numpy reductions
# cost more than the list for a handful of values.
SMALL_INPUT = 64

_FP32 = np.dtype(np.float32)
_FLOAT_MAX = {dt: float(np.finfo(dt).max) for dt in map(np.dtype, (np.float16, np.float32))}


class InputSpecs:
    """A model's inputs as decoding looks them up: made once per loaded session, not
    per request (``LoadedSession.input_specs``)."""

    __slots__ = ("by_name", "fixed", "listed", "targets")

    def __init__(self, specs: Iterable[TensorSpec]) -> None:
        self.by_name: dict[str, TensorSpec] = {s.name: s for s in specs}
        # rank and the (index, size) of each fixed dimension; None when the rank is unknown
        self.fixed: dict[str, tuple[int, tuple[tuple[int, int], ...]] | None] = {
            n: None
            if s.shape is None
            else (
                len(s.shape),
                tuple((i, d) for i, d in enumerate(s.shape) if isinstance(d, int) and d >= 0),
            )
            for n, s in self.by_name.items()
        }
        # numpy dtype per input; None for a datatype the protocol cannot carry
        self.targets: dict[str, np.dtype | None] = {
            n: DATATYPES[s.datatype][0] if s.datatype in DATATYPES else None
            for n, s in self.by_name.items()
        }
        self.listed = ", ".join(repr(n) for n in self.by_name)  # for messages


class Feeds(dict[str, np.ndarray]):
    """Decoded inputs; buffers rented from a pool go back with ``release()``."""

    def __init__(self, pool: BufferPool | None = None) -> None:
        # dict.__new__ made the (empty) mapping; most requests rent nothing
        self._pool = pool
        self._rented: list[np.ndarray] | None = None

    def rent(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        if self._pool is None:
            return np.empty(shape, dtype)
        arr = self._pool.rent_array(shape, dtype)
        if self._rented is None:
            self._rented = []
        self._rented.append(arr)
        return arr

    def release(self) -> None:
        """Give pooled buffers back; the arrays must not be used afterwards."""
        pool, rented, self._rented = self._pool, self._rented, None
        if pool is not None and rented:
            for arr in rented:
                pool.give_back(arr)


def _fmt(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


_KINDS = {
    "b": "booleans",
    "i": "integers",
    "u": "integers",
    "f": "non-integer numbers",
    "c": "complex numbers",
    "U": "strings",
    "S": "strings",
    "O": "mixed or non-scalar values (null, objects, or numbers too large)",
}
_ACCEPTS = {"BOOL": "b", "BYTES": "US", "FP16": "iuf", "FP32": "iuf", "FP64": "iuf"}
_NEEDS = {
    "BOOL": "booleans",
    "BYTES": "strings",
    "FP16": "numbers",
    "FP32": "numbers",
    "FP64": "numbers",
}


def _check_shape(inp: RequestInput, spec: TensorSpec) -> None:
    if spec.shape is None:
        return
    if len(inp.shape) != len(spec.shape):
        raise InferenceInputError(
            f"input {inp.name!r}: shape {_fmt(inp.shape)} has {len(inp.shape)} dimension(s), "
            f"the model's {_fmt(spec.oip_shape())} has {len(spec.shape)}",
            inp.name,
        )
    for i, (got, want) in enumerate(zip(inp.shape, spec.shape, strict=True)):
        if isinstance(want, int) and want >= 0 and got != want:
            raise InferenceInputError(
                f"input {inp.name!r}: shape {_fmt(inp.shape)} does not match the model's "
                f"{_fmt(spec.oip_shape())} at dim {i}",
                inp.name,
            )


def _values(inp: RequestInput, datatype: str, count: int) -> np.ndarray:
    """The request's data as a flat numpy array, refusing values the datatype cannot hold."""
    try:
        arr = np.asarray(inp.data)
    except (ValueError, TypeError):
        raise InferenceInputError(
            f"input {inp.name!r}: data is ragged (nested lists of different lengths)", inp.name
        ) from None
    if arr.size != count:
        raise InferenceInputError(
            f"input {inp.name!r}: data has {arr.size} element(s), shape {_fmt(inp.shape)} "
            f"needs {count}",
            inp.name,
        )
    if count == 0:
        return arr.reshape(-1)
    kind = arr.dtype.kind
    accepts = _ACCEPTS.get(datatype, "iu")
    if kind not in accepts:
        need = _NEEDS.get(datatype, "integers")
        got = _KINDS.get(kind, kind)
        if kind == "f" and need == "integers" and _integral(arr):
            got = "numbers written with a decimal point or beyond the 64-bit range"
        raise InferenceInputError(
            f"input {inp.name!r}: {datatype} data must be integers, got {got}"
            if need == "integers"
            else f"input {inp.name!r}: {datatype} data must be {need}, got {got}",
            inp.name,
        )
    return arr.reshape(-1)


def _integral(arr: np.ndarray) -> bool:
    with np.errstate(invalid="ignore"):
        return bool(np.isfinite(arr).all() and (arr == np.trunc(arr)).all())


def _check_range(name: str, datatype: str, arr: np.ndarray, target: np.dtype) -> None:
    if target.kind in "iu" and arr.dtype != target and arr.size:  # empty: nothing to fit
        info = np.iinfo(target)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            bad = lo if lo < info.min else hi
            raise InferenceInputError(
                f"input {name!r}: value {bad} does not fit {datatype} ({info.min}..{info.max})",
                name,
            )
    elif target.kind == "f" and (
        (arr.dtype.kind == "f" and arr.dtype.itemsize > target.itemsize)  # narrower: may not fit
        or (arr.dtype.kind in "iu" and target.itemsize < 4)
    ):
        fmax = _FLOAT_MAX.get(target) or float(np.finfo(target).max)
        if arr.size:
            # Python's min/max skip a NaN after the first value and give NaN for a first
            # one; NaN or inf compare False here and get the exact look below.
            vals = arr.tolist() if arr.size <= SMALL_INPUT else None
            lo, hi = (min(vals), max(vals)) if vals else (arr.min(), arr.max())
            if -fmax <= lo and hi <= fmax:  # every value fits
                return
        big = np.abs(arr) > fmax
        if big.any() and np.isfinite(arr[big]).any():
            bad = arr[big][np.isfinite(arr[big])][0]
            raise InferenceInputError(
                f"input {name!r}: value {bad} is out of range for {datatype} (max {fmax:g})", name
            )


def decode_inputs(
    request: InferRequest,
    specs: Sequence[TensorSpec] | InputSpecs,
    max_elements: int,
    pool: BufferPool | None = None,
) -> Feeds:
    """Request tensors as numpy arrays shaped for the model, or InferenceInputError.

    With a pool, FP32 inputs of at least POOL_MIN_ELEMENTS are rented from it: call
    ``release()`` after the run.
    """
    plan = specs if isinstance(specs, InputSpecs) else InputSpecs(specs)
    by_name = plan.by_name
    feeds = Feeds(pool)
    total = 0
    try:
        for inp in request.inputs:
            spec = by_name.get(inp.name)
            if spec is None:
                raise InferenceInputError(
                    f"input {inp.name!r} is not an input of this model; it takes {plan.listed}",
                    inp.name,
                )
            if inp.name in feeds:
                raise InferenceInputError(f"input {inp.name!r} is given twice", inp.name)
            if inp.datatype != spec.datatype:
                raise InferenceInputError(
                    f"input {inp.name!r}: datatype {inp.datatype} does not match the model's "
                    f"{spec.datatype}",
                    inp.name,
                )
            fixed = plan.fixed[inp.name]
            if fixed is not None:
                rank, dims = fixed
                if len(inp.shape) != rank:
                    _check_shape(inp, spec)  # raises, saying what differs
                for i, d in dims:
                    if inp.shape[i] != d:
                        _check_shape(inp, spec)
            count = math.prod(inp.shape)
            total += count
            if total > max_elements:
                raise InferenceInputError(
                    f"input {inp.name!r}: the request has more than {max_elements} elements, "
                    "the limit per request; send fewer rows per call",
                    inp.name,
                )
            target = plan.targets[inp.name]
            if target is None:
                raise InferenceInputError(
                    f"input {inp.name!r}: the model's datatype {spec.datatype} cannot be sent "
                    "through this protocol",
                    inp.name,
                )
            arr = _values(inp, spec.datatype, count)
            _check_range(inp.name, spec.datatype, arr, target)
            shape = tuple(inp.shape)
            if target is _FP32 and count >= POOL_MIN_ELEMENTS:
                out = feeds.rent(shape, target)
                np.copyto(out, arr.reshape(shape), casting="unsafe")
            else:
                out = arr.astype(target, copy=False).reshape(shape)
            feeds[inp.name] = out
        if len(feeds) != len(by_name):  # every key of feeds is one of by_name's
            missing = [n for n in by_name if n not in feeds]
            raise InferenceInputError(
                f"input {missing[0]!r} is missing; the model takes {plan.listed}",
                missing[0],
            )
    except BaseException:
        feeds.release()
        raise
    return feeds


# -- encoding ----------------------------------------------------------------------------

PROB_TOLERANCE = 1e-3  # a row of probabilities sums to 1 within this
VALUE_TOLERANCE = 1e-6  # and each value lies in [0, 1] within this
_LOGIT_HINTS = ("logit", "score")
# Up to this many elements, the probability check runs on Python floats: each numpy call
# costs about a microsecond whatever the size, and the check takes eight of them.
SMALL_OUTPUT = 64


def _is_label(arr: np.ndarray, rows: int) -> bool:
    return (
        arr.dtype.kind in "iuOUS"
        and arr.ndim in (1, 2)
        and arr.shape[0] == rows
        and (arr.ndim == 1 or arr.shape[1] == 1)
    )


def row_confidence(arr: np.ndarray, classifier_like: bool) -> np.ndarray | None:
    """Per-row confidence of a [rows, classes] float output, or None if it is not one.

    Probabilities (in [0, 1], rows summing to 1) give the row max; raw scores give the max
    softmax, but only when the output is classifier-like (a label output beside it, or a
    name that says logits/scores), so regression or embedding outputs get none.
    """
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 2 or arr.dtype.kind != "f":
        return None
    x = arr.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        return None
    if x.min() >= -VALUE_TOLERANCE and x.max() <= 1 + VALUE_TOLERANCE:
        sums = x.sum(axis=1)
        if np.abs(sums - 1).max() <= PROB_TOLERANCE:
            return x.max(axis=1)
    if not classifier_like:
        return None
    shifted = np.exp(x - x.max(axis=1, keepdims=True))
    return 1.0 / shifted.sum(axis=1)


def _small_probabilities(arr: np.ndarray) -> list[float] | None:
    """row_confidence's probability case for a small float output, in Python: the row
    maxima when every value is finite, in [0, 1] and each row sums to 1 (within the
    tolerances); None otherwise (the caller then asks row_confidence). A row sum may
    differ from numpy's in the last bit, which only matters within 1e-16 of the
    tolerance; the maxima are exact either way."""
    rows = arr.tolist()  # float16/32 to Python float is exact, as to float64 in numpy
    flat = [v for row in rows for v in row]
    if not all(map(math.isfinite, flat)):
        return None
    if min(flat) < -VALUE_TOLERANCE or max(flat) > 1 + VALUE_TOLERANCE:
        return None
    for row in rows:
        if abs(sum(row) - 1) > PROB_TOLERANCE:
            return None
    return [max(row) for row in rows]


@lru_cache(maxsize=4096)
def _logit_named(name: str) -> bool:
    lowered = name.lower()
    return any(h in lowered for h in _LOGIT_HINTS)


def encode_outputs(names: Sequence[str], values: Sequence[np.ndarray]) -> list[ResponseOutput]:
    """Run results as OIP outputs: flat row-major data, shape, datatype, and confidence.

    ``data`` holds a flat numpy view (no copy); serialising the response turns it into a list.
    Classifier-like outputs get ``parameters.confidence`` (one value per row).
    """
    arrays = [np.asarray(v) for v in values]
    has_label: bool | None = None  # looked for only when an output is not probabilities
    outputs = []
    for name, arr in zip(names, arrays, strict=True):
        conf = None
        if arr.ndim == 2 and arr.shape[0] >= 1 and arr.shape[1] >= 2 and arr.dtype.kind == "f":
            # row_confidence, with small probability outputs read without numpy
            conf = _small_probabilities(arr) if arr.size <= SMALL_OUTPUT else None
            if conf is None:
                if has_label is None:
                    has_label = any(
                        _is_label(a, b.shape[0])
                        for a in arrays
                        for b in arrays
                        if b is not a and b.ndim == 2
                    )
                found = row_confidence(arr, has_label or _logit_named(name))
                conf = None if found is None else found.tolist()
        datatype = datatype_of(arr)
        data = arr.reshape(-1)
        if datatype == "BYTES" and data.dtype.kind == "S":
            data = np.array([b.decode("utf-8", "replace") for b in data], dtype=object)
        outputs.append(
            built(
                ResponseOutput,
                {
                    "name": name,
                    "shape": list(arr.shape),
                    "datatype": datatype,
                    "data": data,
                    "parameters": None if conf is None else {"confidence": conf},
                },
            )
        )
    return outputs


def first_confidence(outputs: Sequence[ResponseOutput]) -> list[float] | None:
    """The first output's confidence list (the response's top-level confidence)."""
    for out in outputs:
        if out.parameters and "confidence" in out.parameters:
            return out.parameters["confidence"]
    return None
