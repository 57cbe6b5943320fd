"""Registered models over HTTP."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from shared.models.status import ModelStatusName
from shared.schemas.common import EntityId, Name, Strict, distinct


class ModelOut(BaseModel):
    id: str
    name: str
    version: int
    status: ModelStatusName
    error: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    blob_uri: str | None = None
    metadata: dict[str, Any] = {}
    created_at: str
    updated_at: str


class ModelDetail(ModelOut):
    tensors: list[dict[str, Any]] = []


class ModelList(BaseModel):
    models: list[ModelOut]


class ModelQuery(Strict):
    name: str | None = Field(default=None, max_length=128)
    status: ModelStatusName | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class UploadQuery(Strict):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    embedding_output: str | None = Field(
        None,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:/-]+$",
        description="For text-embedding models whose export is ambiguous: the output that "
        "carries the embedding ([batch, hidden] or [batch, sequence, hidden]).",
    )


class UploadAccepted(BaseModel):
    model: ModelOut
    created: bool = Field(description="False when these bytes were already registered.")
    job_id: str | None
    job_url: str | None


class UploadUrlQuery(UploadQuery):
    expires_in: int = Field(
        default=3600, ge=60, le=86400, description="Seconds the URL stays valid (60-86400)."
    )


class UploadUrlOut(BaseModel):
    url: str = Field(description="Write-only URL for <name>.onnx; PUT the file to it.")
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str] = Field(description="Headers the PUT must carry.")
    blob: str
    expires_at: str
    max_bytes: int = Field(description="Larger models fail ingestion (MAX_UPLOAD_BYTES).")


class TextEmbedStore(Strict):
    """Where the vectors go: the same ids and types ``PUT /api/embeddings`` accepts, each
    id once (a repeated id would keep only its last text's vector)."""

    entity_ids: list[EntityId] = Field(min_length=1)
    embedding_type: Name = "text"

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
