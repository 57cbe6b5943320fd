"""Error types for vector input and math.

Each error carries a machine ``code`` (for API replies and metrics), the ``field`` it is about
and a human ``message`` that starts with the field, so a 400 reply can be built from the
exception alone and a SQL error still says which argument was wrong and why.
"""

from __future__ import annotations

from shared.errors import InvalidInputError


class VectorError(InvalidInputError):
    """Base class: a vector argument cannot be used (invalid input)."""

    code = "vector_error"
    field: str

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason, field=field, reason=reason)


class VectorFormatError(VectorError):
    """Bytes, base64, JSON type or shape are not a vector/matrix."""

    code = "vector_format"


class DimensionMismatchError(VectorError):
    """Two vectors (or a vector and a matrix) that must agree in dimension do not."""

    code = "dimension_mismatch"

    @classmethod
    def between(
        cls, field: str, dim: int, other_field: str, other_dim: int
    ) -> DimensionMismatchError:
        """The standard message: ``b: dimension 3 does not match a: dimension 4``."""
        return cls(field, f"dimension {dim} does not match {other_field}: dimension {other_dim}")


class NonFiniteError(VectorError):
    """NaN or +/-Inf where only finite numbers make sense."""

    code = "non_finite"


class LimitExceededError(VectorError):
    """More dimensions, rows or bytes than the configured limit."""

    code = "limit_exceeded"


__all__ = [
    "DimensionMismatchError",
    "LimitExceededError",
    "NonFiniteError",
    "VectorError",
    "VectorFormatError",
]
