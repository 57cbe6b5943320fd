"""POST /api/search: exact top-k, as the original sp_ExactVectorSearch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from shared.schemas.common import MatrixJson, Name, Strict, VectorJson

Metric = Literal["cosine", "euclidean", "dot"]


class SearchRequest(Strict):
    vector: VectorJson | None = Field(default=None, description="One query vector.")
    vectors: MatrixJson | None = Field(default=None, description="Several query vectors.")
    # strict: JSON true or "5" is not a count (lax int would read them as 1 and 5)
    top_k: int = Field(default=10, ge=1, le=1000, strict=True)
    metric: Metric = "cosine"
    model_id: Name | None = None
    embedding_type: Name | None = None

    @model_validator(mode="after")
    def _one_query_field(self) -> SearchRequest:
        if (self.vector is None) == (self.vectors is None):
            raise ValueError("give exactly one of 'vector' or 'vectors'")
        return self


class SearchHit(BaseModel):
    entity_id: str
    model_id: str
    embedding_type: str
    distance: float
    similarity: float


class SearchResponse(BaseModel):
    metric: Metric
    results: list[SearchHit] | list[list[SearchHit]] = Field(
        description="One list for 'vector'; one list per query for 'vectors'."
    )
