"""Arguments in, outputs out: blob and queue bindings around one invocation.

Inputs are bound by parameter name (the binding's `name`) and, for blobs, by the
parameter's annotation: `func.InputStream` (Azure's default), `bytes`, `str`, or an
SDK type (`BlobClient`, `ContainerClient`, `StorageStreamDownloader`, from
azure.storage.blob or the azurefunctions-extensions-bindings-blob package) so big blobs
stream instead of landing in memory. Outputs (`func.Out` parameters and a non-http
`$return`) are written only after the function returned, by `OutputWriter`.
"""

from __future__ import annotations

import io
import re
import types
import typing
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError
from azure.functions.blob import InputStream
from azure.storage.blob import BlobClient, ContainerClient

from .loader import FunctionSpec
from .queue_messages import encode_body, message_bodies
from .storage_clients import StorageClients

_EXPRESSION = re.compile(r"\{([^{}]+)\}")
SDK_BLOB_TYPES = ("BlobClient", "ContainerClient", "StorageStreamDownloader")


class OutValue(func.Out):
    """The object behind a `func.Out[...]` parameter."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


def render_path(template: str, data: Mapping[str, Any]) -> str:
    """Fill `{name}`-style binding expressions (case-insensitive; `{rand-guid}`, `{DateTime}`)."""
    values = {k.lower(): v for k, v in data.items()}

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1).strip()
        lowered = key.lower()
        if lowered == "rand-guid":
            return str(uuid.uuid4())
        if lowered == "datetime":
            return datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
        if values.get(lowered) is None:
            raise KeyError(f"binding expression {{{key}}} has no value in this invocation")
        return str(values[lowered])

    return _EXPRESSION.sub(substitute, template)


def split_blob_path(path: str) -> tuple[str, str]:
    """Split "container/name/with/slashes" into ("container", "name/with/slashes")."""
    container, _, name = path.strip("/").partition("/")
    return container, name


def _type_name(annotation: Any) -> str:
    """The bare class name of an annotation, unwrapping Optional (also in string form)."""
    if isinstance(annotation, str):
        text = annotation.replace("typing.", "").strip()
        inner = re.fullmatch(r"(?:Optional\[(.+)\]|(.+?)\s*\|\s*None)", text)
        if inner:
            text = inner.group(1) or inner.group(2)
        return text.rsplit(".", 1)[-1].strip()
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _type_name(args[0]) if args else ""
    return getattr(annotation, "__name__", "")


def blob_argument_kind(annotation: Any) -> str:
    """How to pass a blob: "stream", "bytes", "str" or an SDK type name."""
    name = _type_name(annotation)
    if name in SDK_BLOB_TYPES:
        return name
    if name in ("bytes", "bytearray"):
        return "bytes"
    if name == "str":
        return "str"
    return "stream"


def blob_argument(
    kind: str,
    blob: BlobClient,
    container: ContainerClient,
    *,
    properties: Any = None,
) -> Any:
    """The value a blob parameter receives (None for a missing blob, except SDK types)."""
    if kind == "BlobClient":
        return blob
    if kind == "ContainerClient":
        return container
    try:
        downloader = blob.download_blob()
    except ResourceNotFoundError:
        return None
    if kind == "StorageStreamDownloader":
        return downloader
    data = downloader.readall()
    if kind == "bytes":
        return data
    if kind == "str":
        return data.decode("utf-8")
    props = properties or downloader.properties
    return InputStream(
        data=data,
        name=f"{blob.container_name}/{blob.blob_name}",
        uri=blob.url,
        length=len(data),
        blob_properties={
            "ContentLength": props.size,
            "ContentType": props.content_settings.content_type,
            "ETag": props.etag,
            "LastModified": props.last_modified.isoformat() if props.last_modified else None,
            "BlobType": str(props.blob_type),
        },
        metadata=dict(props.metadata or {}),
    )


def prepare_outputs(spec: FunctionSpec) -> dict[str, OutValue]:
    """An OutValue for each output binding the function takes as a parameter."""
    return {
        b["name"]: OutValue()
        for b in spec.outputs
        if b["name"] != "$return" and b["name"] in spec.parameters
    }


def bind_inputs(
    spec: FunctionSpec, storage: StorageClients | None, data: Mapping[str, Any]
) -> dict[str, Any]:
    """Values for non-trigger input bindings (blob inputs; path from binding data)."""
    args: dict[str, Any] = {}
    for binding in spec.inputs:
        name = binding["name"]
        if binding["type"] != "blob" or name not in spec.parameters:
            continue
        if storage is None:
            raise RuntimeError(f"blob input {name}: storage is not configured")
        container_name, blob_name = split_blob_path(render_path(binding["path"], data))
        container = storage.container(binding.get("connection"), container_name)
        kind = blob_argument_kind(spec.annotations.get(name))
        args[name] = blob_argument(kind, container.get_blob_client(blob_name), container)
    return args


def collect_outputs(
    spec: FunctionSpec, outs: Mapping[str, OutValue], result: Any
) -> list[tuple[dict[str, Any], Any]]:
    """(binding, value) pairs to write once the function has returned."""
    pairs = [(b, outs[b["name"]].get()) for b in spec.outputs if b["name"] in outs]
    returned = spec.returns_to_output
    if returned is not None:
        pairs.append((returned, result))
    return [(b, v) for b, v in pairs if v is not None]


class OutputWriter:
    """Writes queue and blob outputs through the shared storage clients."""

    def __init__(self, storage: StorageClients | None, message_encoding: str) -> None:
        self._storage = storage
        self._encoding = message_encoding

    def write(self, binding: Mapping[str, Any], value: Any, data: Mapping[str, Any]) -> None:
        kind = binding["type"]
        if self._storage is None:
            raise RuntimeError(f"{kind} output {binding['name']}: storage is not configured")
        connection = binding.get("connection")
        if kind == "queue":
            queue = self._storage.queue(connection, render_path(binding["queueName"], data))
            for body in message_bodies(value):
                queue.send_message(encode_body(body, self._encoding))
        elif kind == "blob":
            container_name, blob_name = split_blob_path(render_path(binding["path"], data))
            container = self._storage.container(connection, container_name)
            container.upload_blob(blob_name, _blob_bytes(value), overwrite=True)
        else:
            raise NotImplementedError(f"the local host cannot write {kind} outputs")

    def write_all(self, pairs: list[tuple[dict[str, Any], Any]], data: Mapping[str, Any]) -> None:
        for binding, value in pairs:
            self.write(binding, value, data)


def _blob_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, io.IOBase) or callable(getattr(value, "read", None)):
        data = value.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    raise TypeError(f"blob output takes str, bytes or a file-like object, not {type(value)}")
