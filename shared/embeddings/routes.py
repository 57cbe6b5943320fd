"""PUT/GET/PATCH/DELETE /api/embeddings: vectors stored in SQL as float32 bytes; listing,
counting and deleting a set's rows by metadata filter."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from shared.embeddings.shapes import (
    EmbeddingCountQuery,
    EmbeddingCountResponse,
    EmbeddingDeleteByFilterRequest,
    EmbeddingDeleteByFilterResponse,
    EmbeddingDeleteResponse,
    EmbeddingGetResponse,
    EmbeddingListQuery,
    EmbeddingListResponse,
    EmbeddingMetadataPatch,
    EmbeddingMetadataResponse,
    EmbeddingOut,
    EmbeddingQuery,
    EmbeddingUpsertRequest,
    EmbeddingUpsertResponse,
    ListedEmbedding,
    TextEmbedRequest,
    TextEmbedResponse,
    TruncatedText,
)
from shared.http.errors import RequestError, handle_errors
from shared.http.requests import read_json, read_query
from shared.http.responses import json_response
from shared.http.routing import http_route

bp = func.Blueprint()


@http_route(
    bp,
    "embeddings",
    ["PUT"],
    summary="Insert or replace vectors for one model and embedding type, in one transaction.",
    tags=("embeddings",),
    request=EmbeddingUpsertRequest,
    response=EmbeddingUpsertResponse,
    errors=(400, 409),
)
@handle_errors
def upsert_embeddings(req: func.HttpRequest) -> func.HttpResponse:
    """Insert or replace a batch of vectors in one transaction."""
    from shared.embeddings.service import embedding_store

    body = read_json(req, EmbeddingUpsertRequest)
    dim, counts = embedding_store().upsert(
        body.model_id,
        body.embedding_type,
        [(i.entity_id, i.vector) for i in body.items],
        [i.metadata for i in body.items],
    )
    out = EmbeddingUpsertResponse(
        model_id=body.model_id,
        embedding_type=body.embedding_type,
        dimension=dim,
        inserted=counts.inserted,
        updated=counts.updated,
    )
    return json_response(out.model_dump())


def _query_filter(text: str | None) -> Any:
    """The `filter` query parameter's JSON, or None when it is absent."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise RequestError(
            400, "invalid_request", "filter: not valid JSON (URL-encode it)", "filter"
        ) from None


@http_route(
    bp,
    "embeddings",
    ["GET"],
    summary="One page of a set's rows (entity_id and metadata), optionally matching a "
    "metadata filter; walk with `cursor`.",
    tags=("embeddings",),
    query=EmbeddingListQuery,
    response=EmbeddingListResponse,
    errors=(400,),
)
@handle_errors
def list_embeddings(req: func.HttpRequest) -> func.HttpResponse:
    from shared.embeddings.service import embedding_store

    q = read_query(req, EmbeddingListQuery)
    rows, cursor = embedding_store().list_rows(
        q.model_id, q.embedding_type, _query_filter(q.filter), q.limit, q.cursor
    )
    out = EmbeddingListResponse(
        items=[ListedEmbedding(entity_id=r.entity_id, metadata=r.metadata) for r in rows],
        next_cursor=cursor,
    )
    return json_response(out.model_dump())


@http_route(
    bp,
    "embeddings/count",
    ["GET"],
    summary="How many rows of a set match a metadata filter (all of them without one).",
    tags=("embeddings",),
    query=EmbeddingCountQuery,
    response=EmbeddingCountResponse,
    errors=(400,),
)
@handle_errors
def count_embeddings(req: func.HttpRequest) -> func.HttpResponse:
    from shared.embeddings.service import embedding_store

    q = read_query(req, EmbeddingCountQuery)
    n = embedding_store().count(q.model_id, q.embedding_type, _query_filter(q.filter))
    return json_response(EmbeddingCountResponse(count=n).model_dump())


@http_route(
    bp,
    "embeddings/delete",
    ["POST"],
    summary="Delete a set's rows matching a metadata filter (`{}`: all), bumping its "
    "version and removing its search snapshot.",
    tags=("embeddings",),
    request=EmbeddingDeleteByFilterRequest,
    response=EmbeddingDeleteByFilterResponse,
    errors=(400,),
)
@handle_errors
def delete_embeddings_by_filter(req: func.HttpRequest) -> func.HttpResponse:
    from shared.embeddings.service import embedding_store

    body = read_json(req, EmbeddingDeleteByFilterRequest)
    n = embedding_store().delete_matching(body.model_id, body.embedding_type, body.filter)
    return json_response(EmbeddingDeleteByFilterResponse(deleted=n).model_dump())


def _entity_id(req: func.HttpRequest) -> str:
    entity_id = req.route_params.get("entity_id", "")
    if not entity_id or len(entity_id) > 256:
        raise RequestError(400, "invalid_request", "entity_id: 1 to 256 characters", "entity_id")
    return entity_id


@http_route(
    bp,
    "embeddings/{entity_id}",
    ["GET"],
    summary="An entity's stored vectors, optionally for one model and type.",
    tags=("embeddings",),
    query=EmbeddingQuery,
    response=EmbeddingGetResponse,
    errors=(400, 404),
)
@handle_errors
def get_embeddings(req: func.HttpRequest) -> func.HttpResponse:
    import numpy as np

    from shared.embeddings.service import embedding_store
    from shared.vectors import codec

    entity_id = _entity_id(req)
    q = read_query(req, EmbeddingQuery)
    rows = embedding_store().get(entity_id, q.model_id, q.embedding_type)
    out = EmbeddingGetResponse(
        entity_id=entity_id,
        embeddings=[
            EmbeddingOut(
                entity_id=r.entity_id,
                model_id=r.model_id,
                embedding_type=r.embedding_type,
                dimension=r.dimension,
                vector=codec.encode_vector(np.frombuffer(r.vector, dtype="<f4"), q.format),
                metadata=r.metadata,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in rows
        ],
    )
    return json_response(out.model_dump())


@http_route(
    bp,
    "embeddings/{entity_id}",
    ["PATCH"],
    summary="Replace one stored vector's metadata without resending the vector.",
    tags=("embeddings",),
    request=EmbeddingMetadataPatch,
    response=EmbeddingMetadataResponse,
    errors=(400, 404),
)
@handle_errors
def patch_embedding_metadata(req: func.HttpRequest) -> func.HttpResponse:
    from shared.embeddings.service import embedding_store

    entity_id = _entity_id(req)
    body = read_json(req, EmbeddingMetadataPatch)
    stored = embedding_store().set_metadata(
        entity_id, body.model_id, body.embedding_type, body.metadata
    )
    out = EmbeddingMetadataResponse(
        entity_id=entity_id,
        model_id=body.model_id,
        embedding_type=body.embedding_type,
        metadata=stored,
    )
    return json_response(out.model_dump())


@http_route(
    bp,
    "embeddings/{entity_id}",
    ["DELETE"],
    summary="Delete an entity's vectors, optionally only for one model and type.",
    tags=("embeddings",),
    query=EmbeddingQuery,
    response=EmbeddingDeleteResponse,
    errors=(400, 404),
)
@handle_errors
def delete_embeddings(req: func.HttpRequest) -> func.HttpResponse:
    from shared.embeddings.service import embedding_store

    entity_id = _entity_id(req)
    q = read_query(req, EmbeddingQuery)
    deleted = embedding_store().delete(entity_id, q.model_id, q.embedding_type)
    return json_response(EmbeddingDeleteResponse(entity_id=entity_id, deleted=deleted).model_dump())


@http_route(
    bp,
    "embeddings/text",
    ["POST"],
    summary="Embed texts with a registered sentence-embedding model; optionally store them. "
    "A text over the model's token limit is cut (listed in `truncated`) or, with "
    "`truncate: false`, refused.",
    tags=("embeddings",),
    request=TextEmbedRequest,
    response=TextEmbedResponse,
    errors=(400, 404, 409),
)
@handle_errors
def embed_text(req: func.HttpRequest) -> func.HttpResponse:
    from shared.embeddings.service import text_embeddings
    from shared.vectors import codec

    body = read_json(req, TextEmbedRequest)
    if body.store and len(body.store.entity_ids) != len(body.texts):
        raise RequestError(
            400,
            "invalid_request",
            f"store.entity_ids: {len(body.store.entity_ids)} ids for {len(body.texts)} texts",
            "store.entity_ids",
        )
    store_as = (body.store.embedding_type, body.store.entity_ids) if body.store else None
    out = text_embeddings().embed(body.model, body.texts, store_as, truncate=body.truncate)
    stored = out.stored
    return json_response(
        TextEmbedResponse(
            model=body.model,
            model_version=out.model_version,
            dimension=int(out.vectors.shape[1]),
            vectors=codec.encode_matrix(out.vectors, body.format),
            stored={"inserted": stored.inserted, "updated": stored.updated} if stored else None,
            max_tokens=out.max_tokens,
            truncated=[TruncatedText(index=i, tokens=out.tokens[i]) for i in out.truncated],
        ).model_dump()
    )
