"""PUT/GET/DELETE /api/embeddings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.http.shapes import EntityId, Name, OutputFormat, Strict, VectorJson, distinct


class EmbeddingItem(Strict):
    entity_id: EntityId
    vector: VectorJson
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Values filtered on by search: strings, finite numbers, booleans or "
        "lists of strings; at most 8 KiB as compact JSON. A row written without it has none.",
    )


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
    metadata: dict[str, Any] | None = None
    created_at: str
    updated_at: str


class EmbeddingGetResponse(BaseModel):
    entity_id: str
    embeddings: list[EmbeddingOut]


class EmbeddingMetadataPatch(Strict):
    """PATCH /api/embeddings/{entity_id}: the row's metadata replaced, its vector kept."""

    model_id: Name
    embedding_type: Name = "default"
    metadata: dict[str, Any] | None = Field(description="The new metadata; null clears it.")


class EmbeddingMetadataResponse(BaseModel):
    entity_id: str
    model_id: str
    embedding_type: str
    metadata: dict[str, Any] | None


class EmbeddingQuery(Strict):
    """Query-string filters for GET and DELETE."""

    model_id: Name | None = None
    embedding_type: Name | None = None
    format: OutputFormat = "json"


class EmbeddingDeleteResponse(BaseModel):
    entity_id: str
    deleted: int


#: A filter in a URL: the whole request line must stay within the hosts' limits (8 KiB on
#: Azure Functions, 16 KiB on the local host) however its characters are percent-encoded.
FILTER_QUERY_MAX_CHARS = 1500
_FILTER_QUERY = (
    "A metadata filter as URL-encoded JSON, in the language of POST /api/search's "
    f"`filter` (docs/search.md), at most {FILTER_QUERY_MAX_CHARS} characters; left out, "
    "every row of the set."
)


class EmbeddingListQuery(Strict):
    """GET /api/embeddings: one page of a set's rows."""

    model_id: Name
    embedding_type: Name = "default"
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(
        default=None,
        max_length=64,
        description="The previous page's `next_cursor`; left out, the first page.",
    )
    filter: str | None = Field(
        default=None, max_length=FILTER_QUERY_MAX_CHARS, description=_FILTER_QUERY
    )


class EmbeddingCountQuery(Strict):
    """GET /api/embeddings/count: rows of a set matching a filter."""

    model_id: Name
    embedding_type: Name = "default"
    filter: str | None = Field(
        default=None, max_length=FILTER_QUERY_MAX_CHARS, description=_FILTER_QUERY
    )


class ListedEmbedding(BaseModel):
    entity_id: str
    metadata: dict[str, Any] | None


class EmbeddingListResponse(BaseModel):
    items: list[ListedEmbedding]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null when this page is the last."
    )


class EmbeddingCountResponse(BaseModel):
    count: int


class EmbeddingDeleteByFilterRequest(Strict):
    """POST /api/embeddings/delete: the set's rows matching `filter` go."""

    model_id: Name
    embedding_type: Name = "default"
    filter: dict[str, Any] = Field(
        description="Which rows to delete, in the language of POST /api/search's `filter`; "
        "required: `{}` deletes every row of the set."
    )


class EmbeddingDeleteByFilterResponse(BaseModel):
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
    truncate: bool = Field(
        True,
        description="Cut a text longer than the model's token limit to the limit (the "
        "reply's `truncated` lists it); false: such a text is a 400 naming `texts[i]`.",
    )


class TruncatedText(BaseModel):
    index: int = Field(description="The text's index in `texts`.")
    tokens: int = Field(description="Its tokens before the cut, special tokens included.")


class TextEmbedResponse(BaseModel):
    model: str
    model_version: int
    dimension: int
    vectors: Any
    stored: dict[str, int] | None = None
    max_tokens: int = Field(
        description="The model's token limit per text, special tokens included."
    )
    truncated: list[TruncatedText] = Field(
        default_factory=list,
        description="The texts cut to `max_tokens` (empty when none was).",
    )


# -- the embedding jobs' payloads (POST /api/jobs, or a message on the queue) ---------

JobName = Annotated[str, Field(min_length=1, max_length=256)]
BlobName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][\w.-]*$")]


NON_FINITE = "NaN, infinite or outside the float32 range: vectors take finite numbers only"


def _finite32(vector: list[float]) -> list[float]:
    """Refuse NaN, +/-Infinity (Python's json reads the tokens) and values float32 cannot
    hold, at submit rather than in the job; the error names the element's index."""
    import numpy as np

    with np.errstate(over="ignore"):
        bad = np.flatnonzero(~np.isfinite(np.asarray(vector, dtype=np.float32)))
    if bad.size:
        i = int(bad[0])
        error = PydanticCustomError("non_finite", NON_FINITE)
        detail = InitErrorDetails(type=error, loc=(i,), input=vector[i])
        raise ValidationError.from_exception_data("vector", [detail])
    return vector


def _metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A job item's metadata, checked at submit as ``PUT /api/embeddings`` checks it."""
    from shared.errors import InvalidInputError
    from shared.search.metadata_filter import check_metadata

    if value is None:
        return None
    try:
        return check_metadata(value, "metadata")
    except InvalidInputError as exc:  # pydantic then names the item: items.3.metadata
        raise ValueError(exc.message) from None


class JobEmbeddingItem(Strict):
    """One vector of an embeddings job (JSON numbers, checked finite at submit), and its
    metadata if any."""

    entity_id: JobName
    vector: Annotated[list[float], Field(min_length=1), AfterValidator(_finite32)]
    metadata: Annotated[dict[str, Any] | None, AfterValidator(_metadata)] = None


class EmbeddingsPayload(Strict):
    """A batch of vectors: inline `items`, or a blob in the ingest container
    (`.npy` float32 matrix with a `.json` list of ids beside it, or `.jsonl`)."""

    model_id: JobName
    embedding_type: JobName = "default"
    items: list[JobEmbeddingItem] | None = None
    blob: BlobName | None = None
    ids_blob: BlobName | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EmbeddingsPayload:
        if (self.items is None) == (self.blob is None):
            raise ValueError("give exactly one of 'items' or 'blob'")
        if self.blob is not None and not self.blob.endswith((".npy", ".jsonl")):
            raise ValueError("blob must be a .npy matrix or a .jsonl file")
        return self


class EmbedTextPayload(Strict):
    """Texts through a registered embedding model, stored as embeddings."""

    model: JobName
    texts: list[str] = Field(min_length=1)
    entity_ids: list[JobName] = Field(min_length=1)
    embedding_type: JobName = "default"

    @model_validator(mode="after")
    def _aligned(self) -> EmbedTextPayload:
        if len(self.texts) != len(self.entity_ids):
            raise ValueError(
                f"texts has {len(self.texts)} items but entity_ids has {len(self.entity_ids)}"
            )
        return self
