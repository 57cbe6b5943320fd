"""Model errors that carry a reason a user can act on.

The HTTP layer maps them to status codes (validation/input → 400, not found → 404,
not ready → 409/503) and shows ``reason`` as the message; nothing here knows about HTTP.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class: ``reason`` is one sentence that says what is wrong and what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelValidationError(ModelError):
    """The file is not a valid or usable ONNX model."""


class ModelNotFoundError(ModelError):
    """No model (or no such version) is registered under that name."""


class ModelNotReadyError(ModelError):
    """The model exists but cannot serve yet (still ingesting, or failed)."""


class InferenceInputError(ModelError):
    """A request's tensor does not fit the model; ``field`` names the input (or "outputs")."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IntegrityError(ModelError):
    """Downloaded bytes do not have the registered sha256."""
