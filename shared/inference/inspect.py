"""Inspect an ONNX file: is it valid, what goes in and out, and what its weights look like.

Ingestion runs this once per model version and stores the result, so inference never
re-validates. Bad files (random bytes, truncated uploads, external data that points
outside the model's folder) become ModelValidationError with a reason, never a raw
protobuf traceback. Initializer statistics are computed one tensor at a time, in
float64 chunks, so memory stays near the largest single tensor.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from shared.inference.protocol.types import DATATYPES, ONNX_TO_OIP, Dim, TensorSpec
from shared.registry.errors import ModelValidationError
from shared.registry.repository import TensorStats

STATS_CHUNK = 1 << 20  # elements per float64 chunk when computing statistics
_MAX_REASON = 300


@dataclass(frozen=True)
class ModelInfo:
    """What ingestion records about a model file."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: dict[str, int]
    producer_name: str
    producer_version: str
    ir_version: int
    parameter_count: int
    initializers: list[TensorStats] = field(default_factory=list)

    def to_metadata(self) -> dict[str, Any]:
        """JSON-able summary for the models table's metadata column."""
        return {
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "opset": dict(self.opset),
            "producer": {"name": self.producer_name, "version": self.producer_version},
            "ir_version": self.ir_version,
            "parameter_count": self.parameter_count,
        }


def inspect_model(path: Path) -> ModelInfo:
    """Validate the ONNX file at ``path`` and describe it; ModelValidationError if unusable."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelValidationError(f"model file not found: {path.name}")
    if path.stat().st_size == 0:
        raise ModelValidationError("the model file is empty; upload the complete .onnx file")
    model = _load(path)
    _check_external_data(model, path.parent)
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # checker raises ValidationError, C++ errors, OSError
        raise ModelValidationError(
            f"the file is not a valid ONNX model: {_first_line(exc)}"
        ) from None
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    stats = [_tensor_stats(t, path.parent) for t in graph.initializer]
    params = sum(s.element_count for s in stats)
    params += sum(_count(t.values.dims) for t in graph.sparse_initializer)
    return ModelInfo(
        inputs=tuple(_spec(v) for v in graph.input if v.name not in init_names),
        outputs=tuple(_spec(v) for v in graph.output),
        opset={op.domain or "ai.onnx": int(op.version) for op in model.opset_import},
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        ir_version=int(model.ir_version),
        parameter_count=params,
        initializers=stats,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 3] + "..."


def _load(path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except OSError as exc:
        raise ModelValidationError(f"the model file cannot be read: {exc.strerror}") from None
    except Exception:  # protobuf DecodeError and friends: the bytes are not a ModelProto
        raise ModelValidationError(
            "the file is not a valid ONNX model: it cannot be parsed as an ONNX protobuf "
            "(corrupt or truncated upload?); upload the complete .onnx file again"
        ) from None


# -- external data -----------------------------------------------------------------------


def _all_tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto in a graph, its sparse initializers, node attributes and subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def _location_problem(location: str, folder: Path) -> str | None:
    if not location:
        return "it has no location"
    if (
        location.startswith(("/", "\\"))
        or PureWindowsPath(location).is_absolute()
        or PureWindowsPath(location).drive
        or os.path.isabs(location)
    ):
        return f"its location {location!r} is an absolute path"
    parts = PurePosixPath(location.replace("\\", "/")).parts
    if ".." in parts:
        return f"its location {location!r} contains '..'"
    root = folder.resolve()
    target = (folder / location).resolve()
    if target != root and root not in target.parents:
        return f"its location {location!r} resolves outside the model's folder"
    return None


def _check_external_data(model: Any, folder: Path) -> None:
    """Refuse external-data references that could read files outside the model's folder."""
    from onnx import TensorProto

    for tensor in _all_tensors(model.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        problem = _location_problem(location, folder)
        if problem:
            raise ModelValidationError(
                f"external data of tensor {tensor.name!r} is refused: {problem}; external "
                "data files must sit in the model's own folder"
            )


# -- inputs, outputs ---------------------------------------------------------------------


_ORT_NAMES = {onnx_type: ort for _, onnx_type, ort in DATATYPES.values()}


def _elem_str(elem_type: int) -> str:
    return _ORT_NAMES.get(elem_type, f"tensor({_onnx_type_name(elem_type).lower()})")


def _type_str(tp: Any) -> str:
    """An onnxruntime-style type string for non-tensor types, e.g. seq(map(int64,...))."""
    kind = tp.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        return _elem_str(getattr(tp, kind).elem_type)
    if kind == "sequence_type":
        return f"seq({_type_str(tp.sequence_type.elem_type)})"
    if kind == "map_type":
        key = _elem_str(tp.map_type.key_type)[len("tensor(") : -1]
        return f"map({key},{_type_str(tp.map_type.value_type)})"
    if kind == "optional_type":
        return f"optional({_type_str(tp.optional_type.elem_type)})"
    return kind or "unknown"


def _onnx_type_name(elem_type: int) -> str:
    import onnx

    if elem_type in ONNX_TO_OIP:
        return ONNX_TO_OIP[elem_type]
    try:
        return onnx.TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"UNKNOWN({elem_type})"


def _dims(shape_proto: Any) -> tuple[Dim, ...]:
    out: list[Dim] = []
    for d in shape_proto.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            out.append(d.dim_param)
        else:
            out.append(-1)
    return tuple(out)


def _spec(value_info: Any) -> TensorSpec:
    tp = value_info.type
    if tp.WhichOneof("value") != "tensor_type":
        return TensorSpec(value_info.name, _type_str(tp), None, is_tensor=False)
    tt = tp.tensor_type
    shape = _dims(tt.shape) if tt.HasField("shape") else None
    return TensorSpec(value_info.name, _onnx_type_name(tt.elem_type), shape)


# -- initializer statistics --------------------------------------------------------------


def _count(dims: Any) -> int:
    return math.prod(int(d) for d in dims)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def moments(flat: np.ndarray) -> tuple[float, float, float, float]:
    """(min, max, mean, population std) in float64, merging fixed-size chunks (Chan et al.)."""
    n = 0
    mean = m2 = 0.0
    lo, hi = math.inf, -math.inf
    for start in range(0, flat.size, STATS_CHUNK):
        chunk = flat[start : start + STATS_CHUNK].astype(np.float64)
        k = chunk.size
        c_mean = float(chunk.mean())
        c_m2 = float(np.square(chunk - c_mean).sum())
        total = n + k
        delta = c_mean - mean
        mean += delta * k / total
        m2 += c_m2 + delta * delta * n * k / total
        n = total
        lo = min(lo, float(chunk.min()))
        hi = max(hi, float(chunk.max()))
    return lo, hi, mean, math.sqrt(m2 / n) if n else math.nan


def _tensor_stats(tensor: Any, folder: Path) -> TensorStats:
    import onnx
    from onnx import numpy_helper

    dims = [int(d) for d in tensor.dims]
    count = _count(dims)
    dtype = _onnx_type_name(tensor.data_type)
    empty = TensorStats(tensor.name, dtype, list(dims), count, None, None, None, None)
    numeric = tensor.data_type not in (
        onnx.TensorProto.STRING,
        onnx.TensorProto.COMPLEX64,
        onnx.TensorProto.COMPLEX128,
        onnx.TensorProto.UNDEFINED,
    )
    if not numeric or count == 0:
        return empty
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)  # loading external data fills the proto: keep it off the model
        tensor = copy
    try:
        arr = numpy_helper.to_array(tensor, base_dir=str(folder))
    except Exception:  # an exotic dtype numpy cannot hold: record shape and count only
        return empty
    flat = arr.reshape(-1)
    if flat.dtype.kind == "b":
        flat = flat.view(np.uint8)
    try:
        lo, hi, mean, std = moments(flat)
    except (TypeError, ValueError):
        return empty
    return TensorStats(
        tensor.name, dtype, list(dims), count, _finite(lo), _finite(hi), _finite(mean), _finite(std)
    )
