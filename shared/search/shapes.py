"""POST /api/search: exact top-k over stored embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, model_validator

from shared.errors import InvalidInputError
from shared.http.shapes import MatrixJson, Name, Strict, VectorJson

Metric = Literal["cosine", "euclidean", "dot"]


def _json_integer(value: object) -> object:
    """A count is a JSON number: lax int would read `true` as 1 and `"5"` as 5, while
    5.0 is an integer to JSON Schema (and so to the OpenAPI document) and stays one."""
    if isinstance(value, bool | str):
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    return value


class SearchRequest(Strict):
    vector: VectorJson | None = Field(default=None, description="One query vector.")
    vectors: MatrixJson | None = Field(default=None, description="Several query vectors.")
    text: str | None = Field(
        default=None,
        min_length=1,
        description="One query as text, embedded with `model` (as POST /api/embeddings/text "
        "does) and searched as a vector. A text over the model's token limit is a 400 "
        "naming `text`, not cut: a cut query would search for something else.",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The registered text model that embeds `text` (required with it; 404 "
        "when unknown). Search its own vectors with `model_id` set to the same name.",
    )
    top_k: Annotated[int, BeforeValidator(_json_integer)] = Field(default=10, ge=1, le=1000)
    metric: Metric = "cosine"
    model_id: Name | None = None
    embedding_type: Name | None = None
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Only rows whose metadata matches, in Pinecone's filter language: "
        "$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or; a bare value is $eq, keys "
        'at one level are and-ed. Example: {"genre": "drama", "year": {"$gte": 2020}}.',
    )
    include_metadata: bool = Field(
        default=False, description="Put each hit's metadata in the reply (null otherwise)."
    )

    @model_validator(mode="after")
    def _one_query_field(self) -> SearchRequest:
        given = [f for f in ("vector", "vectors", "text") if getattr(self, f) is not None]
        if len(given) != 1:
            # Not a ValueError: pydantic would report it with no field; this names one
            # (the second given, or "vector" when none is).
            field = given[1] if given else "vector"
            raise InvalidInputError(
                f"{field}: give exactly one of 'vector' or 'vectors' or 'text'", field=field
            )
        if (self.text is None) != (self.model is None):
            need = "required with 'text'" if self.model is None else "only with 'text'"
            raise InvalidInputError(f"model: {need} (the model embeds the text)", field="model")
        return self


# A dataclass, not a model: the service makes up to 1000 hits per query, and a reply
# serialises them without validating each again.
@dataclass(frozen=True)
class SearchHit:
    entity_id: str
    model_id: str
    embedding_type: str
    distance: float
    similarity: float
    metadata: dict[str, Any] | None = None


class SearchResponse(BaseModel):
    metric: Metric
    results: list[SearchHit] | list[list[SearchHit]] = Field(
        description="One list for 'vector'; one list per query for 'vectors'."
    )
