"""PUT/GET/DELETE /api/embeddings."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from shared.schemas.common import EntityId, Name, OutputFormat, Strict, VectorJson, distinct


class EmbeddingItem(Strict):
    entity_id: EntityId
    vector: VectorJson


class EmbeddingUpsertRequest(Strict):
    model_id: Name
    embedding_type: Name = "default"
    items: list[EmbeddingItem] = Field(min_length=1)

    @field_validator("items")
    @classmethod
    def _distinct_ids(cls, items: list[EmbeddingItem]) -> list[EmbeddingItem]:
        distinct([item.entity_id for item in items], "items[{}].entity_id")
        return items


class EmbeddingUpsertResponse(BaseModel):
    model_id: str
    embedding_type: str
    dimension: int
    inserted: int
    updated: int


class EmbeddingOut(BaseModel):
    entity_id: str
    model_id: str
    embedding_type: str
    dimension: int
    vector: Any
    created_at: str
    updated_at: str


class EmbeddingGetResponse(BaseModel):
    entity_id: str
    embeddings: list[EmbeddingOut]


class EmbeddingQuery(Strict):
    """Query-string filters for GET and DELETE."""

    model_id: Name | None = None
    embedding_type: Name | None = None
    format: OutputFormat = "json"


class EmbeddingDeleteResponse(BaseModel):
    entity_id: str
    deleted: int
