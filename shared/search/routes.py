"""POST /api/search: exact top-k over stored embeddings."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from shared.http.errors import handle_errors
from shared.http.requests import read_json
from shared.http.responses import json_response
from shared.http.routing import http_route
from shared.search.shapes import SearchRequest, SearchResponse

bp = func.Blueprint()


@http_route(
    bp,
    "search",
    ["POST"],
    summary="Exact top-k search over stored embeddings (cosine, euclidean or dot), "
    "optionally among the rows whose metadata matches a filter; the query is a vector, "
    "several, or a text a registered text model embeds.",
    tags=("search",),
    request=SearchRequest,
    response=SearchResponse,
    errors=(400, 404, 409, 429),
)
@handle_errors
def search(req: func.HttpRequest) -> func.HttpResponse:
    from shared.search.service import search_service

    body = read_json(req, SearchRequest)
    service = search_service()
    scope: dict[str, Any] = {
        "model_id": body.model_id,
        "embedding_type": body.embedding_type,
        "include_metadata": body.include_metadata,
    }
    if body.filter is not None:
        from shared.search.metadata_filter import parse_filter

        scope["where"] = parse_filter(body.filter, "filter")
    if body.text is not None and body.model is not None:  # the shape checks they pair
        queries, single = service.embed_query(body.model, body.text), True
    else:
        queries, single = service.decode_queries(body.vector, body.vectors)
    try:
        if single:  # concurrent single queries of one set (and filter) run as one batch
            hits = [service.search_one(queries[0], top_k=body.top_k, metric=body.metric, **scope)]
        else:
            hits = service.search(
                queries, top_k=body.top_k, metric=body.metric, field="vectors", **scope
            )
    finally:
        service.release(queries)
    out = SearchResponse.model_construct(metric=body.metric, results=hits[0] if single else hits)
    return json_response(out.model_dump())
