"""The one place that turns errors into HTTP replies.

Services raise the kinds of ``shared.errors``; this module maps each kind to a status
code and gives the reply in one of three shapes from the same mapping: the app's
``{"error": {"code", "message", "field"}}`` (``handle_errors``), the Open Inference
Protocol's ``{"error": "<message>"}`` (``oip_errors``) and OpenAI's
``{"error": {"message", "type", "param", "code"}}`` (``openai_errors``), which the
openai SDK turns into its own exception types by status. Anything outside the hierarchy is
a bug: logged with its traceback, answered with a 500 that shows no internals.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import azure.functions as func
from pydantic import ValidationError

from shared.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    HartonomousError,
    InvalidInputError,
    NotFoundError,
    NotReadyError,
    NotSupportedError,
    PayloadTooLargeError,
    TooBusyError,
    UnavailableError,
    UnprocessableError,
)
from shared.http.responses import dumps, error_response

log = logging.getLogger(__name__)

#: The status of each kind of error; a class not listed takes its nearest listed base.
STATUS: dict[type[HartonomousError], int] = {
    InvalidInputError: 400,
    AuthenticationError: 401,
    NotFoundError: 404,
    ConflictError: 409,
    NotReadyError: 409,
    PayloadTooLargeError: 413,
    UnprocessableError: 422,
    TooBusyError: 429,
    NotSupportedError: 501,
    UnavailableError: 503,
}


class RequestError(HartonomousError):
    """A problem with the HTTP request itself, raised by the routes with its status."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message, field=field, code=code)
        self.status = status


@dataclass(frozen=True)
class ErrorReply:
    """What a failed call answers, before it takes one of the two shapes."""

    status: int
    code: str
    message: str
    field: str | None = None
    retry_after: int | None = None

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else None


INTERNAL = ErrorReply(500, "internal_error", "the server failed; see its log")
MISCONFIGURED = ErrorReply(500, "configuration_error", "the server is misconfigured; see its log")


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_error(exc: ValidationError) -> RequestError:
    """pydantic's first error as a 400 naming the field (`items[0].vector: ...`)."""
    first = exc.errors(include_url=False)[0]
    loc = tuple(p for p in first["loc"] if p not in ("function-after",))
    field = _field_path(loc) or None
    msg = first["msg"].removeprefix("Value error, ")  # pydantic's wrapping of our reasons
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    elif first["type"] == "missing":
        msg = "required field is missing"
    message = f"{field}: {msg}" if field else msg
    code = "non_finite" if first["type"] == "non_finite" else "invalid_request"
    return RequestError(400, code, message, field)


def status_of(exc: HartonomousError) -> int | None:
    """The status of the error's kind (nearest in its class hierarchy), or None."""
    if isinstance(exc, RequestError):
        return exc.status
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return None


#: Seconds a caller is told to wait when storage did not answer.
STORAGE_RETRY_AFTER = 30


def storage_unavailable(exc: BaseException) -> UnavailableError | None:
    """An Azure SDK failure that says the service did not answer (no connection, no
    reply in time, a reply cut short, or the service's own 5xx) as an
    ``UnavailableError``; None for anything else (a 403 is a misconfiguration, a bug)."""
    if not type(exc).__module__.startswith("azure."):
        return None
    from azure.core.exceptions import (
        DecodeError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        why = "did not answer"
    elif isinstance(exc, DecodeError) or (
        isinstance(exc, HttpResponseError) and exc.status_code is None and exc.response is None
    ):
        # The connection broke mid-reply (IncompleteReadError, a DecodeError) or the
        # reply could not be read: no status came back at all.
        why = "cut its reply short"
    elif isinstance(exc, HttpResponseError) and (exc.status_code or 0) >= 500:
        why = f"answered {exc.status_code}"
    else:
        return None
    first = next(iter(str(exc).splitlines()), "")
    log.warning("storage %s: %s: %s", why, type(exc).__name__, first)
    err = UnavailableError(
        f"storage {why}; try again later", code="storage_unavailable", reason=str(exc)
    )
    err.retry_after = STORAGE_RETRY_AFTER
    return err


def reply_for(exc: BaseException, where: str) -> ErrorReply:
    """The reply for ``exc`` raised in function ``where``; logs what a caller cannot fix."""
    if isinstance(exc, ValidationError):
        exc = validation_error(exc)
    exc = storage_unavailable(exc) or exc
    if isinstance(exc, HartonomousError):
        status = status_of(exc)
        if status is not None:
            retry_after = getattr(exc, "retry_after", None)
            return ErrorReply(status, exc.code, exc.message, exc.field, retry_after)
        if isinstance(exc, ConfigurationError):
            # The setting's name helps the operator; its value may be a secret.
            log.error("configuration error in %s: %s", where, exc.message)
            if exc.field:
                return ErrorReply(
                    503,
                    "not_configured",
                    f"setting {exc.field} is not set or not valid here; the server log says why",
                )
            return MISCONFIGURED
    log.error("unhandled error in %s", where, exc_info=exc)
    return INTERNAL


def app_response(reply: ErrorReply) -> func.HttpResponse:
    """The app's shape: ``{"error": {"code", "message", "field"}}``."""
    return error_response(reply.status, reply.code, reply.message, reply.field, reply.headers)


def oip_response(reply: ErrorReply) -> func.HttpResponse:
    """The Open Inference Protocol's shape: ``{"error": "<message>"}``."""
    return func.HttpResponse(
        dumps({"error": reply.message}),
        status_code=reply.status,
        mimetype="application/json",
        headers=reply.headers,
    )


def openai_response(reply: ErrorReply) -> func.HttpResponse:
    """OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``; ``type`` as
    OpenAI names its errors (``invalid_request_error`` for every 4xx but 429)."""
    if reply.status == 429:
        kind = "rate_limit_error"
    elif reply.status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    body = {"message": reply.message, "type": kind, "param": reply.field, "code": reply.code}
    return func.HttpResponse(
        dumps({"error": body}),
        status_code=reply.status,
        mimetype="application/json",
        headers=reply.headers,
    )


Route = Callable[[func.HttpRequest], func.HttpResponse]


def _guard(shape: Callable[[ErrorReply], func.HttpResponse]) -> Callable[[Route], Route]:
    def decorate(fn: Route) -> Route:
        @functools.wraps(fn)
        def wrapper(req: func.HttpRequest) -> func.HttpResponse:
            try:
                return fn(req)
            except Exception as exc:
                reply = reply_for(exc, fn.__name__)
                if reply.status >= 500:  # the invocation's span says what failed
                    from shared.telemetry import record_error

                    record_error(exc)
                return shape(reply)

        return wrapper

    return decorate


#: Decorator for the app's routes: errors answer ``{"error": {"code", "message", "field"}}``.
handle_errors = _guard(app_response)
#: Decorator for the Open Inference Protocol routes: errors answer ``{"error": "<message>"}``.
oip_errors = _guard(oip_response)
#: Decorator for the OpenAI-compatible routes (``/api/v1``): errors answer
#: ``{"error": {"message", "type", "param", "code"}}``.
openai_errors = _guard(openai_response)
