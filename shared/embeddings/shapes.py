"""PUT/GET/DELETE /api/embeddings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from shared.http.shapes import EntityId, Name, OutputFormat, Strict, VectorJson, distinct


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


class TextEmbedStore(Strict):
    """Where the vectors go: the same ids and types ``PUT /api/embeddings`` accepts, each
    id once (a repeated id would keep only its last text's vector)."""

    entity_ids: list[EntityId] = Field(min_length=1)
    embedding_type: Name = "default"

    @field_validator("entity_ids")
    @classmethod
    def _distinct(cls, ids: list[str]) -> list[str]:
        return distinct(ids, "entity_ids[{}]")


class TextEmbedRequest(Strict):
    model: str = Field(min_length=1, max_length=128)
    texts: list[str] = Field(min_length=1, max_length=1024)
    store: TextEmbedStore | None = None
    format: Literal["json", "b64"] = "json"


class TextEmbedResponse(BaseModel):
    model: str
    model_version: int
    dimension: int
    vectors: Any
    stored: dict[str, int] | None = None
