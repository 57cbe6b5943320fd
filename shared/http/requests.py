"""Request parsing shared by the HTTP blueprints.

A body or query that does not fit raises ``RequestError`` (400 or 413) naming the field;
``shared.http.errors`` maps it, and every other error, to the reply (``RequestError``,
``handle_errors`` and ``validation_error`` are re-exported for the blueprints that
import them from here).
"""

from __future__ import annotations

import zlib
from typing import TypeVar

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared import json_input
from shared.http.errors import RequestError, handle_errors, validation_error
from shared.settings import get_settings

__all__ = [
    "RequestError",
    "handle_errors",
    "parse_json",
    "read_body",
    "read_json",
    "read_query",
    "validation_error",
]

M = TypeVar("M", bound=BaseModel)


def read_body(req: func.HttpRequest, max_bytes: int | None = None) -> bytes:
    """The body, decoded when it says ``Content-Encoding: gzip`` or ``deflate`` (as the
    Triton clients send with compression on); 413 when it is over the limit, before or
    after decoding (a small gzip body cannot unpack into gigabytes); 415 for any other
    encoding."""
    limit = max_bytes if max_bytes is not None else get_settings().max_request_bytes
    body = req.get_body() or b""
    if len(body) > limit:
        raise RequestError(
            413, "body_too_large", f"request body is {len(body)} bytes; the limit is {limit}"
        )
    encoding = (req.headers.get("content-encoding") or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in _DECODERS:
        raise RequestError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or identity",
        )
    decoder = zlib.decompressobj(_DECODERS[encoding])
    try:
        out = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RequestError(
            400, "invalid_encoding", f"request body is not valid {encoding}: {exc}"
        ) from None
    if len(out) > limit or decoder.unconsumed_tail:
        raise RequestError(
            413, "body_too_large", f"request body decoded from {encoding} is over the limit {limit}"
        )
    if not decoder.eof:
        reason = f"request body is a truncated {encoding} stream"
        raise RequestError(400, "invalid_encoding", reason)
    return out


#: zlib's window bits per Content-Encoding: gzip's header, or zlib's (RFC 9110 deflate).
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def read_json(req: func.HttpRequest, model: type[M], max_bytes: int | None = None) -> M:
    """The body as `model`; 413 when too large, 400 when not JSON or not the shape."""
    return parse_json(read_body(req, max_bytes), model)


def parse_json(body: bytes, model: type[M]) -> M:
    """JSON bytes as `model`; 400 when not JSON or not the shape."""
    if not body.strip():
        raise RequestError(400, "invalid_json", "request body is empty; expected a JSON object")
    try:
        data = json_input.loads(body)
    except json_input.JsonInputError as exc:
        raise RequestError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(400, "invalid_json", "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


#: The function key's query parameter: the host checks it and passes it on with the rest.
KEY_PARAM = "code"


def read_query(req: func.HttpRequest, model: type[M]) -> M:
    """The query as `model`, less the function key (`?code=` is how a caller may send it,
    so it is no unknown field)."""
    params = {k: v for k, v in req.params.items() if k != KEY_PARAM}
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise validation_error(exc) from None
