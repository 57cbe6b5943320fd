"""Model errors that carry a reason a user can act on.

Each is also a kind of ``shared.errors`` (not found, not ready, invalid input,
unprocessable), which is all the HTTP layer needs to pick a status; ``reason`` (the
message) is one sentence that says what is wrong and what to do.
"""

from __future__ import annotations

from shared.errors import (
    HartonomousError,
    InvalidInputError,
    NotFoundError,
    NotReadyError,
    UnprocessableError,
)


class ModelError(HartonomousError):
    """Base class of the model errors; a subclass also names its kind."""

    def __init__(self, reason: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(reason, field=field, code=code)


class ModelValidationError(ModelError, UnprocessableError):
    """The file is not a valid or usable ONNX model."""

    code = "invalid_model"


class ModelNotFoundError(ModelError, NotFoundError):
    """No model (or no such version) is registered under that name."""

    code = "model_not_found"


class ModelNotReadyError(ModelError, NotReadyError):
    """The model exists but cannot serve yet (still ingesting, or failed)."""

    code = "model_not_ready"


class ModelBlobMissingError(ModelNotReadyError):
    """The version's bytes are gone from Blob Storage: it cannot serve until uploaded again."""

    code = "model_unavailable"


class InferenceInputError(ModelError, InvalidInputError):
    """A request's tensor does not fit the model; ``field`` names the input (or "outputs")."""

    code = "invalid_input"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, field=field)


class IntegrityError(ModelError, UnprocessableError):
    """Downloaded bytes do not have the registered sha256."""

    code = "integrity_error"
