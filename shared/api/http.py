"""Request parsing and error mapping shared by the HTTP blueprints.

Every failure a caller can fix becomes a 4xx with `{"error": {code, message, field}}`.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import TypeVar

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.api.responses import error_response
from shared.config import get_settings

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class RequestError(Exception):
    """A problem with the request, said so the caller can fix it."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_error(exc: ValidationError) -> RequestError:
    first = exc.errors(include_url=False)[0]
    loc = tuple(p for p in first["loc"] if p not in ("function-after",))
    field = _field_path(loc) or None
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    elif first["type"] == "missing":
        msg = "required field is missing"
    message = f"{field}: {msg}" if field else msg
    return RequestError(400, "invalid_request", message, field)


def read_json(req: func.HttpRequest, model: type[M], max_bytes: int | None = None) -> M:
    """The body as `model`; 413 when too large, 400 when not JSON or not the shape."""
    limit = max_bytes if max_bytes is not None else get_settings().max_request_bytes
    body = req.get_body() or b""
    if len(body) > limit:
        raise RequestError(
            413, "body_too_large", f"request body is {len(body)} bytes; the limit is {limit}"
        )
    if not body.strip():
        raise RequestError(400, "invalid_json", "request body is empty; expected a JSON object")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(400, "invalid_json", "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def read_query(req: func.HttpRequest, model: type[M]) -> M:
    try:
        return model.model_validate(dict(req.params))
    except ValidationError as exc:
        raise validation_error(exc) from None


def handle_errors(
    fn: Callable[[func.HttpRequest], func.HttpResponse],
) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Turn caller errors into 4xx JSON; anything else is a logged 500 without internals."""

    @functools.wraps(fn)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        from shared.config import ConfigError
        from shared.db.repos.embeddings import EmbeddingDimensionError
        from shared.storage.names import InvalidNameError
        from shared.vectors.errors import VectorError

        try:
            return fn(req)
        except RequestError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.field)
        except VectorError as exc:
            return error_response(400, exc.code, exc.message, exc.field)
        except EmbeddingDimensionError as exc:
            return error_response(409, "dimension_conflict", str(exc), "items")
        except InvalidNameError as exc:  # rules a schema pattern cannot say, such as no ".."
            return error_response(400, "invalid_name", str(exc), exc.field)
        except ConfigError as exc:  # a setting this function needs is missing or wrong
            return error_response(503, "not_configured", str(exc))
        except Exception:
            log.exception("unhandled error in %s", fn.__name__)
            return error_response(500, "internal_error", "the server failed; see its log")

    return wrapper
