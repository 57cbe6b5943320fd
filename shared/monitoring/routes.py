"""GET /api/metrics/resources: this instance's CPU, memory and GPUs right now."""

from __future__ import annotations

from dataclasses import asdict

import azure.functions as func

from shared.http.responses import json_response
from shared.http.routing import http_route
from shared.monitoring.shapes import ResourceUsage

bp = func.Blueprint()

# Long enough for a stable CPU figure, short enough for a health-style probe.
WINDOW_SECONDS = 0.2


@http_route(
    bp,
    "metrics/resources",
    ["GET"],
    summary="CPU and memory of this process and its machine, and NVIDIA GPUs when "
    f"present; CPU measured over {WINDOW_SECONDS} s during the call.",
    tags=("monitoring",),
    response=ResourceUsage,
    errors=(),
)
def metrics_resources(req: func.HttpRequest) -> func.HttpResponse:
    from shared.monitoring.resources import sample

    reading = sample(WINDOW_SECONDS)
    return json_response(ResourceUsage.model_validate(asdict(reading)).model_dump())
