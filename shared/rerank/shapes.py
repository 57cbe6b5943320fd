"""POST /api/v1/rerank in Cohere's v2 rerank shape.

Request ``{"model", "query", "documents": [str], "top_n"?, "return_documents"?,
"max_tokens_per_doc"?}``; reply ``{"id", "results": [{"index", "relevance_score",
"document"?: {"text"}}], "meta": {"api_version", "billed_units": {"search_units"},
"tokens": {"input_tokens"}, "warnings"?}}``, results best first. Besides Cohere's fields
the reply says which model version ranked (``model``, ``model_version``) and, in
``meta.truncated_documents``, which documents were cut to fit and by how much: a cut is
never silent.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, Field

from shared.http.shapes import Strict

#: Documents per call, as Cohere recommends at most.
MAX_DOCUMENTS = 1000
#: Characters of the query and of each document (far beyond any model's token limit:
#: the cut is in tokens, and the reply says where it fell).
MAX_TEXT_CHARS = 100_000
#: Cohere bills one search unit per query of up to this many documents.
DOCUMENTS_PER_SEARCH_UNIT = 100

Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]


class RerankRequest(Strict):
    model: str = Field(min_length=1, max_length=128, description="A registered cross-encoder.")
    query: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    documents: list[Text] = Field(
        min_length=1,
        max_length=MAX_DOCUMENTS,
        description="Texts to rank against the query; each is cut to fit the model's limit "
        "with the query (the query never is), and the reply lists those cut.",
    )
    top_n: int | None = Field(
        None, ge=1, description="Return only the best N (all when absent or larger)."
    )
    return_documents: bool = Field(False, description="Include each document's text.")
    max_tokens_per_doc: int | None = Field(
        None,
        ge=1,
        description="Cut each document to this many tokens (it is cut to the model's limit "
        "anyway).",
    )


class RerankDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int = Field(description="The document's position in the request.")
    relevance_score: float = Field(description="In [0, 1]; higher is more relevant.")
    document: RerankDocument | None = Field(None, description="With return_documents only.")


class TruncatedDocument(BaseModel):
    index: int
    tokens: int = Field(description="The document's own tokens.")
    kept_tokens: int = Field(description="Those the model read, beside the query.")


class BilledUnits(BaseModel):
    search_units: int


class Tokens(BaseModel):
    input_tokens: int


class RerankMeta(BaseModel):
    api_version: dict[str, str]
    billed_units: BilledUnits
    tokens: Tokens
    max_tokens: int = Field(description="The model's limit for a query and document together.")
    truncated_documents: list[TruncatedDocument]
    warnings: list[str] | None = None


class RerankResponse(BaseModel):
    id: str
    model: str
    model_version: int
    results: list[RerankResult]
    meta: RerankMeta


def search_units(documents: int) -> int:
    """Cohere's count: one unit per query of up to 100 documents."""
    return max(1, math.ceil(documents / DOCUMENTS_PER_SEARCH_UNIT))


def reply(
    request_id: str,
    body: RerankRequest,
    model_version: int,
    scores: Any,
    order: list[int],
    input_tokens: int,
    max_tokens: int,
    truncated: list[tuple[int, int, int]],
) -> dict[str, Any]:
    """The reply body (a plain dict: built once per call, no model validation)."""
    results: list[dict[str, Any]] = []
    for i in order:
        result: dict[str, Any] = {"index": i, "relevance_score": float(scores[i])}
        if body.return_documents:
            result["document"] = {"text": body.documents[i]}
        results.append(result)
    meta: dict[str, Any] = {
        "api_version": {"version": "2"},
        "billed_units": {"search_units": search_units(len(body.documents))},
        "tokens": {"input_tokens": input_tokens},
        "max_tokens": max_tokens,
        "truncated_documents": [
            {"index": i, "tokens": tokens, "kept_tokens": kept} for i, tokens, kept in truncated
        ],
    }
    if truncated:
        meta["warnings"] = [
            f"{len(truncated)} of {len(body.documents)} documents were cut to fit the "
            f"model's limit of {max_tokens} tokens with the query"
            + (
                f" or max_tokens_per_doc {body.max_tokens_per_doc}"
                if body.max_tokens_per_doc
                else ""
            )
            + "; meta.truncated_documents lists them"
        ]
    return {
        "id": request_id,
        "model": body.model,
        "model_version": model_version,
        "results": results,
        "meta": meta,
    }
