"""POST /api/v1/rerank: Cohere's v2 rerank over a registered cross-encoder.

Anonymous at the host, as every ``/api/v1`` route: clients built for these APIs send
their key as ``Authorization: Bearer <key>``, which the host does not read, so the route
checks it first (``bearer_route`` in ``shared.http.routing``). Errors answer in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``, which rerank clients read as they
read Cohere's ``{"message"}``: by status first.
"""

from __future__ import annotations

import azure.functions as func

from shared.http.requests import read_json
from shared.http.responses import json_response
from shared.http.routing import bearer_route
from shared.rerank.shapes import RerankRequest, RerankResponse, reply

bp = func.Blueprint()


@bearer_route(
    bp,
    "v1/rerank",
    ["POST"],
    summary="Rank documents by relevance to a query with a registered cross-encoder "
    "(Cohere v2 rerank shape; Authorization: Bearer <key>).",
    tags=("rerank",),
    request=RerankRequest,
    response=RerankResponse,
    errors=(400, 401, 404, 409, 422, 429),
)
def rerank(req: func.HttpRequest) -> func.HttpResponse:
    import uuid

    from shared.rerank.service import rerank_service

    body = read_json(req, RerankRequest)
    ranking = rerank_service().rerank(
        body.model, body.query, body.documents, body.top_n, body.max_tokens_per_doc
    )
    return json_response(
        reply(
            str(uuid.uuid4()),
            body,
            ranking.model_version,
            ranking.scores,
            ranking.order,
            ranking.pairs.input_tokens,
            ranking.limit,
            ranking.pairs.truncated(),
        )
    )
