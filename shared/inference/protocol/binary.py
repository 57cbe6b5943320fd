"""The Open Inference Protocol's binary tensor data extension (as Triton and KServe
define it), which the standard clients use by default.

A request whose JSON header length is in `Inference-Header-Content-Length` carries raw
tensor bytes after the JSON: each such input has `parameters.binary_data_size` and no
`data`, in input order. Outputs come back binary when asked (`parameters.binary_data`
per output, or `binary_data_output` for all), the header length set on the reply and
`binary_data_size` in each binary output's parameters. Tensors are row-major
little-endian; a BYTES element is a 4-byte little-endian length and its bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.inference.protocol.types import DATATYPES, InferRequest, InferResponse
from shared.registry.errors import InferenceInputError

HEADER = "Inference-Header-Content-Length"
EXTENSION = "binary_tensor_data"
_LENGTH = struct.Struct("<I")


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview | None]:
    """(JSON header, binary part or None) of a request body."""
    if header_length is None:
        return body, None
    try:
        n = int(header_length.strip())
    except ValueError:
        raise InferenceInputError(
            f"{HEADER}: {header_length!r} is not a byte count", HEADER
        ) from None
    if n < 0 or n > len(body):
        raise InferenceInputError(
            f"{HEADER}: {n} is past the end of the {len(body)}-byte body", HEADER
        )
    return body[:n], memoryview(body)[n:]


def attach_inputs(request: InferRequest, binary: memoryview | None) -> None:
    """Give every input its data: from `data`, or sliced from the binary part by its
    `binary_data_size`; the sizes must account for the binary part exactly."""
    offset = 0
    for inp in request.inputs:
        size = (inp.parameters or {}).get("binary_data_size")
        if size is None:
            if inp.data is None:
                raise InferenceInputError(
                    f"input {inp.name!r} has neither data nor parameters.binary_data_size",
                    inp.name,
                )
            continue
        if inp.data is not None:
            raise InferenceInputError(
                f"input {inp.name!r} has both data and parameters.binary_data_size", inp.name
            )
        if binary is None:
            raise InferenceInputError(
                f"input {inp.name!r}: binary_data_size is given but the request has no "
                f"binary part (its JSON length belongs in the {HEADER} header)",
                inp.name,
            )
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InferenceInputError(
                f"input {inp.name!r}: binary_data_size must be a byte count, got {size!r}",
                inp.name,
            )
        if offset + size > len(binary):
            raise InferenceInputError(
                f"input {inp.name!r}: binary_data_size {size} goes past the end of the body "
                f"({len(binary) - offset} bytes of tensor data left)",
                inp.name,
            )
        inp.data = decode_tensor(inp.name, inp.datatype, inp.shape, binary[offset : offset + size])
        offset += size
    if binary is not None and offset != len(binary):
        raise InferenceInputError(
            f"the body has {len(binary) - offset} bytes after the JSON header that no "
            "input's binary_data_size accounts for",
            "inputs",
        )


def decode_tensor(name: str, datatype: str, shape: Sequence[int], raw: memoryview) -> Any:
    """One input's raw bytes as a flat array (BYTES: a list of strings)."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _decode_bytes(name, count, raw)
    if datatype not in DATATYPES:
        raise InferenceInputError(f"input {name!r}: unknown datatype {datatype}", name)
    dtype = DATATYPES[datatype][0]
    wire = np.dtype(np.uint8) if datatype == "BOOL" else dtype.newbyteorder("<")
    need = count * wire.itemsize
    if len(raw) != need:
        raise InferenceInputError(
            f"input {name!r}: binary_data_size {len(raw)} does not match shape "
            f"{list(shape)} of {datatype} ({need} bytes)",
            name,
        )
    arr = np.frombuffer(raw, dtype=wire)
    if datatype == "BOOL":
        if arr.size and arr.max() > 1:
            raise InferenceInputError(f"input {name!r}: BOOL bytes must be 0 or 1", name)
        return arr.astype(np.bool_)
    return arr.astype(dtype, copy=False)


def _decode_bytes(name: str, count: int, raw: memoryview) -> list[str]:
    out: list[str] = []
    at = 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise InferenceInputError(
                f"input {name!r}: BYTES element {len(out)} has a cut length prefix", name
            )
        (length,) = _LENGTH.unpack_from(raw, at)
        at += 4
        if at + length > len(raw):
            raise InferenceInputError(
                f"input {name!r}: BYTES element {len(out)} says {length} bytes, "
                f"{len(raw) - at} remain",
                name,
            )
        try:
            out.append(bytes(raw[at : at + length]).decode("utf-8"))
        except UnicodeDecodeError:
            raise InferenceInputError(
                f"input {name!r}: BYTES element {len(out)} is not UTF-8 text", name
            ) from None
        at += length
    if len(out) != count:
        raise InferenceInputError(
            f"input {name!r}: {len(out)} BYTES element(s) in binary_data_size, the shape "
            f"needs {count}",
            name,
        )
    return out


def binary_outputs(request: InferRequest, names: Sequence[str]) -> set[str]:
    """The outputs the request wants as raw bytes."""
    every = bool((request.parameters or {}).get("binary_data_output", False))
    asked = {o.name: (o.parameters or {}).get("binary_data") for o in request.outputs or ()}
    return {n for n in names if (asked.get(n) if asked.get(n) is not None else every)}


def tensor_bytes(datatype: str, data: Any) -> bytes:
    """An output's flat data as the extension's bytes."""
    if datatype == "BYTES":
        parts = []
        for item in np.asarray(data, dtype=object).reshape(-1):
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(_LENGTH.pack(len(raw)) + raw)
        return b"".join(parts)
    arr = np.asarray(data)
    if datatype == "BOOL":
        return arr.astype(np.uint8).tobytes()
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def encode_response(response: InferResponse, binary: set[str]) -> tuple[bytes, int | None]:
    """The reply body, and its JSON header's length when any output is binary."""
    if not binary:
        return response.model_dump_json(exclude_none=True).encode(), None
    parts = []
    for out in response.outputs:
        if out.name in binary:
            raw = tensor_bytes(out.datatype, out.data)
            out.parameters = {**(out.parameters or {}), "binary_data_size": len(raw)}
            out.data = None
            parts.append(raw)
    header = response.model_dump_json(exclude_none=True).encode()
    return header + b"".join(parts), len(header)
