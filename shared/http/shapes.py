"""Shapes shared by every area: the error body and the vector wire formats."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

_B64 = {"type": "string", "contentEncoding": "base64", "description": "float32 little-endian"}

VECTOR_SCHEMA: dict[str, Any] = {
    "description": "A vector: a JSON array of numbers, or base64 of float32 LE bytes.",
    "oneOf": [
        {"type": "array", "items": {"type": "number"}, "minItems": 1},
        {
            "type": "object",
            "properties": {"b64": _B64},
            "required": ["b64"],
            "additionalProperties": False,
        },
    ],
}

MATRIX_SCHEMA: dict[str, Any] = {
    "description": "A matrix: an array of equal-length arrays, or base64 with its shape.",
    "oneOf": [
        {
            "type": "array",
            "items": {"type": "array", "items": {"type": "number"}, "minItems": 1},
            "minItems": 1,
        },
        {
            "type": "object",
            "properties": {
                "b64": _B64,
                "shape": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1},
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
            "required": ["b64", "shape"],
            "additionalProperties": False,
        },
    ],
}

VECTOR_OR_MATRIX_SCHEMA: dict[str, Any] = {
    "description": "A vector or a matrix (see the vector and matrix formats).",
    "anyOf": [VECTOR_SCHEMA, MATRIX_SCHEMA],
}

# Raw JSON in the model; decoded by shared.vectors.codec with field-named errors.
VectorJson = Annotated[Any, WithJsonSchema(VECTOR_SCHEMA)]
MatrixJson = Annotated[Any, WithJsonSchema(MATRIX_SCHEMA)]
VectorOrMatrixJson = Annotated[Any, WithJsonSchema(VECTOR_OR_MATRIX_SCHEMA)]

OutputFormat = Literal["json", "b64"]

Name = Annotated[
    str,
    Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$"),
]


def _one_segment(value: str) -> str:
    if "/" in value:
        raise ValueError(
            "'/' is not allowed: the id is one path segment of /api/embeddings/{entity_id}, "
            "where it is read and deleted"
        )
    return value


def distinct(ids: list[str], where: str) -> list[str]:
    """Each id once per request: a repeat would silently keep only its last vector.
    ``where`` names the place of item ``i`` (``"items[{}].entity_id"``)."""
    seen: set[str] = set()
    for i, entity_id in enumerate(ids):
        if entity_id in seen:
            raise ValueError(f"{where.format(i)} repeats {entity_id!r}")
        seen.add(entity_id)
    return ids


#: An entity id: a Name that GET and DELETE /api/embeddings/{entity_id} can address.
EntityId = Annotated[Name, AfterValidator(_one_segment)]


class Strict(BaseModel):
    """Unknown fields are refused, so a typo is a 400 instead of a silent default."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class OipErrorBody(BaseModel):
    """The Open Inference Protocol's error reply."""

    error: str


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error reply, on the OpenAI-compatible routes (``/api/v1``)."""

    error: OpenAIErrorDetail
