"""Liveness and readiness."""

from __future__ import annotations

import azure.functions as func

from shared.health.shapes import HealthResponse, ReadyResponse
from shared.http.responses import json_response
from shared.http.routing import http_route

bp = func.Blueprint()


def _ready(detailed: bool) -> func.HttpResponse:
    from shared.health.readiness import app_readiness

    checks = app_readiness().check()
    failed = [c.part for c in checks if not c.ok]
    body = ReadyResponse(
        status="ok" if not failed else "unavailable",
        failed=failed,
        checks={c.part: c.detail if detailed else c.public for c in checks},
    )
    return json_response(body.model_dump(), 200 if not failed else 503)


@http_route(
    bp,
    "health",
    ["GET"],
    summary="Liveness: the process answers.",
    tags=("health",),
    auth=func.AuthLevel.ANONYMOUS,
    response=HealthResponse,
    errors=(),
)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness touches nothing else, so a slow database cannot fail it."""
    return json_response(HealthResponse(status="ok").model_dump())


@http_route(
    bp,
    "ready",
    ["GET"],
    summary="Readiness within 2 s: 200 when SQL and storage answer, else 503 naming the "
    "parts that failed (and a missing setting's name); no hosts or messages.",
    tags=("health",),
    auth=func.AuthLevel.ANONYMOUS,
    response=ReadyResponse,
    errors=(503,),
)
def ready(req: func.HttpRequest) -> func.HttpResponse:
    return _ready(detailed=False)


@http_route(
    bp,
    "ready/details",
    ["GET"],
    summary="Readiness with each failure's reason (hosts, messages): for key holders.",
    tags=("health",),
    response=ReadyResponse,
    errors=(503,),
)
def ready_details(req: func.HttpRequest) -> func.HttpResponse:
    return _ready(detailed=True)
