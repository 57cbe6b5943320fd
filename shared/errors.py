"""The one error hierarchy of the services, in the Azure SDK for Python's style.

``HartonomousError`` is the base (like ``azure.core.exceptions.AzureError``); its direct
subclasses say the *kind* of failure, and every error class a service raises on purpose
derives from one kind (``VectorError`` is an ``InvalidInputError``, ``ModelNotFoundError``
a ``NotFoundError``...). The HTTP layer (``shared.http.errors``) maps kinds to status codes;
nothing here knows about HTTP, so services stay usable from queues, SQL and scripts.

Every error has ``message`` (the whole sentence, also ``str(err)``), ``reason`` (the
why; the message when there is no more to say), ``code`` (machine-readable, stable)
and ``field`` (the input it is about, or None).
"""

from __future__ import annotations


class HartonomousError(Exception):
    """Base class: a failure the service raised on purpose, with a message a caller can act on.

    An error of no more specific kind is an internal failure (HTTP 500 without its text).
    """

    code = "error"
    field: str | None = None

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = message if reason is None else reason
        if field is not None:
            self.field = field
        if code is not None:
            self.code = code


class InvalidInputError(HartonomousError):
    """The input cannot be used as given (HTTP 400): fix it and send it again."""

    code = "invalid_request"


class AuthenticationError(HartonomousError):
    """The call carries no key, or not one this deployment accepts (HTTP 401)."""

    code = "invalid_api_key"


class NotFoundError(HartonomousError):
    """What the input names does not exist (HTTP 404)."""

    code = "not_found"


class ConflictError(HartonomousError):
    """The input conflicts with what is stored (HTTP 409)."""

    code = "conflict"


class NotReadyError(HartonomousError):
    """It exists but cannot serve yet: still loading or ingesting, or failed (HTTP 409)."""

    code = "not_ready"


class PayloadTooLargeError(HartonomousError):
    """The input is larger than a configured limit (HTTP 413)."""

    code = "body_too_large"


class UnprocessableError(HartonomousError):
    """Well-formed input whose content cannot be used, such as a broken model file (HTTP 422)."""

    code = "unprocessable"


class NotSupportedError(HartonomousError):
    """This deployment cannot do it at all, e.g. its connection lacks a key (HTTP 501)."""

    code = "not_supported"


class UnavailableError(HartonomousError):
    """A part it needs does not answer now; trying later may work (HTTP 503).

    ``retry_after`` (seconds), when set, becomes the reply's ``Retry-After`` header.
    """

    code = "unavailable"
    retry_after: int | None = None


class TooBusyError(HartonomousError):
    """This instance has as much work queued as it accepts; try again shortly (HTTP 429).

    ``retry_after`` (seconds) becomes the reply's ``Retry-After`` header.
    """

    code = "too_busy"
    retry_after: int | None = 1


class ConfigurationError(HartonomousError):
    """A setting has a value the app cannot use (HTTP 500: the operator must fix it)."""

    code = "configuration_error"


__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "HartonomousError",
    "InvalidInputError",
    "NotFoundError",
    "NotReadyError",
    "NotSupportedError",
    "PayloadTooLargeError",
    "TooBusyError",
    "UnavailableError",
    "UnprocessableError",
]
