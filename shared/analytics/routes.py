"""Analytics over HTTP: usage over time, per-model figures and storage.

numpy is imported inside the functions (through shared.analytics), so importing
function_app.py stays light.
"""

from __future__ import annotations

import azure.functions as func

from shared.analytics.shapes import (
    ModelAnalytics,
    ModelAnalyticsList,
    ModelsQuery,
    StorageOut,
    UsageOut,
    UsageQuery,
)
from shared.http.requests import handle_errors, read_query
from shared.http.responses import json_response
from shared.http.routing import http_route

bp = func.Blueprint()


def _service():
    from shared.analytics.service import analytics_service

    return analytics_service()


@http_route(
    bp,
    "analytics/usage",
    ["GET"],
    summary="Inferences and jobs per UTC day, week or month over the last N days.",
    tags=("analytics",),
    query=UsageQuery,
    response=UsageOut,
)
@handle_errors
def analytics_usage(req: func.HttpRequest) -> func.HttpResponse:
    q = read_query(req, UsageQuery)
    out = UsageOut.model_validate(_service().usage(q.bucket, q.days))
    return json_response(out.model_dump())


@http_route(
    bp,
    "analytics/models",
    ["GET"],
    summary="Per model: calls, failures, latency mean/p50/p95/p99, mean confidence.",
    tags=("analytics",),
    query=ModelsQuery,
    response=ModelAnalyticsList,
)
@handle_errors
def analytics_models(req: func.HttpRequest) -> func.HttpResponse:
    q = read_query(req, ModelsQuery)
    out = ModelAnalyticsList.model_validate(_service().models(q.days))
    return json_response(out.model_dump())


@http_route(
    bp,
    "analytics/models/{name}",
    ["GET"],
    summary="One model's figures with its confidence histogram.",
    tags=("analytics",),
    query=ModelsQuery,
    response=ModelAnalytics,
    errors=(400, 404),
)
@handle_errors
def analytics_model(req: func.HttpRequest) -> func.HttpResponse:
    q = read_query(req, ModelsQuery)
    name = req.route_params.get("name", "")
    out = ModelAnalytics.model_validate(_service().model(name, q.days))
    return json_response(out.model_dump())


@http_route(
    bp,
    "analytics/storage",
    ["GET"],
    summary="Models, versions, blob bytes, embeddings per model and type, database bytes.",
    tags=("analytics",),
    response=StorageOut,
    errors=(),
)
@handle_errors
def analytics_storage(req: func.HttpRequest) -> func.HttpResponse:
    out = StorageOut.model_validate(_service().storage())
    return json_response(out.model_dump())
