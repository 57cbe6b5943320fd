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
from typing import Annotated, Any

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


class Feeds(dict[str, np.ndarray]):
    """Decoded inputs; buffers rented from a pool go back with ``release()``."""

    def __init__(self, pool: BufferPool | None = None) -> None:
        super().__init__()
        self._pool = pool
        self._rented: list[np.ndarray] = []

    def rent(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        if self._pool is None:
            return np.empty(shape, dtype)
        arr = self._pool.rent_array(shape, dtype)
        self._rented.append(arr)
        return arr

    def release(self) -> None:
        """Give pooled buffers back; the arrays must not be used afterwards."""
        pool, rented, self._rented = self._pool, self._rented, []
        if pool is not None:
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
        (arr.dtype.kind == "f" and target.itemsize < 8)
        or (arr.dtype.kind in "iu" and target.itemsize < 4)
    ):
        fmax = float(np.finfo(target).max)
        big = np.abs(arr) > fmax
        if big.any() and np.isfinite(arr[big]).any():
            bad = arr[big][np.isfinite(arr[big])][0]
            raise InferenceInputError(
                f"input {name!r}: value {bad} is out of range for {datatype} (max {fmax:g})", name
            )


def decode_inputs(
    request: InferRequest,
    specs: Sequence[TensorSpec],
    max_elements: int,
    pool: BufferPool | None = None,
) -> Feeds:
    """Request tensors as numpy arrays shaped for the model, or InferenceInputError.

    With a pool, FP32 arrays are rented from it: call ``release()`` after the run.
    """
    by_name = {s.name: s for s in specs}
    feeds = Feeds(pool)
    total = 0
    try:
        for inp in request.inputs:
            spec = by_name.get(inp.name)
            if spec is None:
                raise InferenceInputError(
                    f"input {inp.name!r} is not an input of this model; it takes "
                    f"{', '.join(repr(n) for n in by_name)}",
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
            _check_shape(inp, spec)
            count = math.prod(inp.shape)
            total += count
            if total > max_elements:
                raise InferenceInputError(
                    f"input {inp.name!r}: the request has more than {max_elements} elements, "
                    "the limit per request; send fewer rows per call",
                    inp.name,
                )
            target = DATATYPES[spec.datatype][0] if spec.datatype in DATATYPES else None
            if target is None:
                raise InferenceInputError(
                    f"input {inp.name!r}: the model's datatype {spec.datatype} cannot be sent "
                    "through this protocol",
                    inp.name,
                )
            arr = _values(inp, spec.datatype, count)
            _check_range(inp.name, spec.datatype, arr, target)
            shape = tuple(inp.shape)
            if target == np.float32:
                out = feeds.rent(shape, target)
                np.copyto(out, arr.reshape(shape), casting="unsafe")
            else:
                out = arr.astype(target, copy=False).reshape(shape)
            feeds[inp.name] = out
        missing = [n for n in by_name if n not in feeds]
        if missing:
            raise InferenceInputError(
                f"input {missing[0]!r} is missing; the model takes "
                f"{', '.join(repr(n) for n in by_name)}",
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


def encode_outputs(names: Sequence[str], values: Sequence[np.ndarray]) -> list[ResponseOutput]:
    """Run results as OIP outputs: flat row-major data, shape, datatype, and confidence.

    ``data`` holds a flat numpy view (no copy); serialising the response turns it into a list.
    Classifier-like outputs get ``parameters.confidence`` (one value per row).
    """
    arrays = [np.asarray(v) for v in values]
    has_label = any(
        _is_label(a, b.shape[0]) for a in arrays for b in arrays if b is not a and b.ndim == 2
    )
    outputs = []
    for name, arr in zip(names, arrays, strict=True):
        hint = any(h in name.lower() for h in _LOGIT_HINTS)
        conf = row_confidence(arr, has_label or hint)
        datatype = datatype_of(arr)
        data = arr.reshape(-1)
        if datatype == "BYTES" and data.dtype.kind == "S":
            data = np.array([b.decode("utf-8", "replace") for b in data], dtype=object)
        outputs.append(
            ResponseOutput.model_construct(
                name=name,
                shape=list(arr.shape),
                datatype=datatype,
                data=data,
                parameters=None if conf is None else {"confidence": conf.tolist()},
            )
        )
    return outputs


def first_confidence(outputs: Sequence[ResponseOutput]) -> list[float] | None:
    """The first output's confidence list (the response's top-level confidence)."""
    for out in outputs:
        if out.parameters and "confidence" in out.parameters:
            return out.parameters["confidence"]
    return None
