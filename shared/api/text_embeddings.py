"""POST /api/embeddings/text: text in, normalised vectors out (and optionally stored)."""

from __future__ import annotations

import azure.functions as func

from shared.api.errors import RequestError, handle_errors
from shared.api.http import read_json
from shared.api.responses import json_response
from shared.api.routing import http_route
from shared.schemas.models import TextEmbedRequest, TextEmbedResponse

bp = func.Blueprint()


@http_route(
    bp,
    "embeddings/text",
    ["POST"],
    summary="Embed texts with a registered sentence-embedding model; optionally store them.",
    tags=("embeddings",),
    request=TextEmbedRequest,
    response=TextEmbedResponse,
    errors=(400, 404, 409),
)
@handle_errors
def embed_text(req: func.HttpRequest) -> func.HttpResponse:
    from shared import services
    from shared.vectors import codec

    body = read_json(req, TextEmbedRequest)
    if body.store and len(body.store.entity_ids) != len(body.texts):
        raise RequestError(
            400,
            "invalid_request",
            f"store.entity_ids: {len(body.store.entity_ids)} ids for {len(body.texts)} texts",
            "store.entity_ids",
        )
    models = services.text_embedders()
    record = models.record(body.model)  # 404 / 409 naming the field "model"
    vectors = models.embedder(record).embed(body.texts)
    stored = None
    if body.store:
        counts = services.embedding_store().upsert_array(
            body.model, body.store.embedding_type, body.store.entity_ids, vectors
        )
        stored = {"inserted": counts.inserted, "updated": counts.updated}
    return json_response(
        {
            "model": body.model,
            "model_version": record.version,
            "dimension": int(vectors.shape[1]),
            "vectors": codec.encode_matrix(vectors, body.format),
            "stored": stored,
        }
    )
