"""Registered models over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from shared.http.shapes import Strict
from shared.registry.status import ModelStatusName

if TYPE_CHECKING:
    from shared.registry.repository import ModelRecord


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

    @classmethod
    def of(cls, record: ModelRecord) -> ModelOut:
        return cls(
            id=record.id,
            name=record.name,
            version=record.version,
            status=record.status,  # type: ignore[arg-type]
            error=record.error,
            size_bytes=record.size_bytes,
            sha256=record.sha256,
            blob_uri=record.blob_uri,
            metadata=record.metadata,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


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
    max_tokens: int | None = Field(
        None,
        ge=8,
        le=131072,
        description="For text models: the most tokens one text may have, special tokens "
        "included. Unset: the tokenizer file's truncation length, else the model's fixed "
        "sequence length, else its position-embedding table, else 512.",
    )
    batch_max_size: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="This model's own BATCH_MAX_SIZE: most rows one dynamic batch of its "
        "calls holds; 1 never batches it.",
    )
    batch_max_delay_ms: float | None = Field(
        None,
        ge=0,
        le=1000,
        description="This model's own BATCH_MAX_DELAY_MS.",
    )

    def options(self) -> dict[str, str]:
        """The registration options given, as the blob metadata that carries them."""
        given = {
            "embedding_output": self.embedding_output,
            "max_tokens": self.max_tokens,
            "batch_max_size": self.batch_max_size,
            "batch_max_delay_ms": self.batch_max_delay_ms,
        }
        return {key: str(value) for key, value in given.items() if value is not None}


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


class ModelPayload(Strict):
    """Inspect and record one registered model version (its ``id`` in /api/models)."""

    version_id: str = Field(min_length=1, max_length=256)
