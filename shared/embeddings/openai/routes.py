"""The OpenAI embeddings API under ``/api/v1``: ``POST embeddings``, ``GET models``,
``GET models/{model}``.

The openai SDK (and LangChain, LlamaIndex and the rest built on it) sends its key as
``Authorization: Bearer <key>``; the Functions host reads keys only from
``x-functions-key`` or ``?code=``, so these routes are anonymous at the host and check
the Bearer key first thing (``bearer_route`` in ``shared.http.routing``). Errors answer
in OpenAI's shape (``openai_errors``), from the same mapping as every other route, so
the SDK raises its own ``AuthenticationError`` (401), ``NotFoundError`` (404) or
``BadRequestError`` (400).
"""

from __future__ import annotations

import azure.functions as func

from shared.embeddings.openai.shapes import (
    EmbeddingsRequest,
    EmbeddingsResponse,
    ModelDetail,
    ModelList,
)
from shared.http.requests import read_json
from shared.http.responses import json_response
from shared.http.routing import bearer_route

bp = func.Blueprint()

#: ``owned_by`` of every model: what the clients show as its owner.
OWNER = "hartonomous"


@bearer_route(
    bp,
    "v1/embeddings",
    ["POST"],
    summary="OpenAI embeddings API: embed one text or a list with a registered text model "
    "(Authorization: Bearer <key>). An input over the model's token limit is a 400 naming "
    "input[i]; token ids are refused.",
    tags=("openai",),
    request=EmbeddingsRequest,
    response=EmbeddingsResponse,
    errors=(400, 401, 404, 409, 429),
)
def openai_embeddings(req: func.HttpRequest) -> func.HttpResponse:
    from shared.embeddings.openai.codec import embeddings_body, shorten
    from shared.embeddings.service import text_embeddings

    body = read_json(req, EmbeddingsRequest)
    out = text_embeddings().embed(body.model, body.input, truncate=False, field="input")
    vectors = shorten(out.vectors, body.dimensions)
    return json_response(
        embeddings_body(body.model, vectors, int(sum(out.tokens)), body.encoding_format)
    )


@bearer_route(
    bp,
    "v1/models",
    ["GET"],
    summary="OpenAI models API: the registered models that can embed text (ready, with a "
    "tokenizer beside them).",
    tags=("openai",),
    response=ModelList,
    errors=(401,),
)
def openai_models(req: func.HttpRequest) -> func.HttpResponse:
    from shared.embeddings.openai.codec import unix_seconds
    from shared.embeddings.service import text_embeddings

    data = [
        {
            "id": record.name,
            "object": "model",
            "created": unix_seconds(record.created_at),
            "owned_by": OWNER,
        }
        for record in text_embeddings().text_models()
    ]
    return json_response({"object": "list", "data": data})


@bearer_route(
    bp,
    "v1/models/{model}",
    ["GET"],
    summary="OpenAI models API: one text model, with its version and token limit.",
    tags=("openai",),
    response=ModelDetail,
    errors=(401, 404, 409),
)
def openai_model(req: func.HttpRequest) -> func.HttpResponse:
    from shared.embeddings.openai.codec import unix_seconds
    from shared.embeddings.service import text_embeddings

    record, limit = text_embeddings().text_model(req.route_params.get("model", ""))
    return json_response(
        ModelDetail(
            id=record.name,
            created=unix_seconds(record.created_at),
            owned_by=OWNER,
            version=record.version,
            max_tokens=limit.tokens,
            max_tokens_source=limit.source,
        ).model_dump()
    )
