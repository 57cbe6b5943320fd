"""POST /api/search: exact top-k over stored embeddings."""

from __future__ import annotations

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
    summary="Exact top-k search over stored embeddings (cosine, euclidean or dot).",
    tags=("search",),
    request=SearchRequest,
    response=SearchResponse,
    errors=(400, 429),
)
@handle_errors
def search(req: func.HttpRequest) -> func.HttpResponse:
    from shared.search.service import search_service

    body = read_json(req, SearchRequest)
    service = search_service()
    queries, single = service.decode_queries(body.vector, body.vectors)
    where = {"model_id": body.model_id, "embedding_type": body.embedding_type}
    try:
        if single:  # concurrent single queries of one set run as one batch
            hits = [service.search_one(queries[0], top_k=body.top_k, metric=body.metric, **where)]
        else:
            hits = service.search(
                queries, top_k=body.top_k, metric=body.metric, field="vectors", **where
            )
    finally:
        service.release(queries)
    out = SearchResponse.model_construct(metric=body.metric, results=hits[0] if single else hits)
    return json_response(out.model_dump())
