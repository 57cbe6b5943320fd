"""Liveness and readiness."""

from __future__ import annotations

import azure.functions as func

from shared.api.responses import json_response

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness: the process answers. Touches nothing else."""
    return json_response({"status": "ok"})


@bp.route(route="ready", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def ready(req: func.HttpRequest) -> func.HttpResponse:
    """Readiness: 200 when SQL and storage answer, else 503 naming what failed."""
    from shared import services
    from shared.health import readiness

    checks = readiness(services.database, services.blob_service, services.queue_service)
    failed = [c.part for c in checks if not c.ok]
    body = {
        "status": "ok" if not failed else "unavailable",
        "failed": failed,
        "checks": {c.part: c.detail for c in checks},
    }
    return json_response(body, 200 if not failed else 503)
