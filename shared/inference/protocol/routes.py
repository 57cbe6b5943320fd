"""Open Inference Protocol (KServe v2) over the registered ONNX models.

Routes live under the route prefix: `v2`, `v2/health/live`, `v2/health/ready`,
`v2/models/{name}[/versions/{version}]`, `.../ready` and `.../infer`. Errors are
`{"error": "<message>"}` with a 4xx, as the protocol says: the same mapping as every
other route (``shared.http.errors``), in the protocol's shape.
"""

from __future__ import annotations

import time

import azure.functions as func

from shared.http.errors import oip_errors
from shared.http.responses import dumps
from shared.http.routing import http_route
from shared.http.shapes import OipErrorBody

bp = func.Blueprint()


def _reply(body: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(dumps(body), status_code=status, mimetype="application/json")


MAX_VERSION = 2**31 - 1  # a SQL INT


def _name_version(req: func.HttpRequest) -> tuple[str, int | None]:
    from shared.http.errors import RequestError
    from shared.storage.names import validate_model_name

    name = validate_model_name(req.route_params.get("name", ""))
    raw = req.route_params.get("version")
    if raw is None:
        return name, None
    try:
        version = int(raw)
    except ValueError:
        raise RequestError(400, "invalid_version", f"version: {raw!r} is not an integer") from None
    if not 1 <= version <= MAX_VERSION:  # beyond it, SQL cannot even hold the number
        raise RequestError(400, "invalid_version", f"version: must be 1 to {MAX_VERSION}")
    return name, version


@http_route(
    bp,
    "v2",
    ["GET"],
    summary="Server metadata.",
    tags=("inference",),
    errors=(),
    error_body=OipErrorBody,
)
@oip_errors
def oip_server(req: func.HttpRequest) -> func.HttpResponse:
    from shared.inference.protocol.binary import EXTENSION

    return _reply(
        {
            "name": "hartonomous-functions",
            "version": "1.0.0",
            "extensions": [EXTENSION, "model_repository", "statistics"],
        }
    )


@http_route(
    bp,
    "v2/health/live",
    ["GET"],
    summary="Liveness, per the protocol.",
    tags=("inference",),
    auth=func.AuthLevel.ANONYMOUS,
    errors=(),
    error_body=OipErrorBody,
)
@oip_errors
def oip_live(req: func.HttpRequest) -> func.HttpResponse:
    return _reply({"live": True})


@http_route(
    bp,
    "v2/health/ready",
    ["GET"],
    summary="Readiness: the model registry (SQL) answers.",
    tags=("inference",),
    auth=func.AuthLevel.ANONYMOUS,
    errors=(503,),
    error_body=OipErrorBody,
)
@oip_errors
def oip_ready(req: func.HttpRequest) -> func.HttpResponse:
    from shared.inference.service import inference_service

    try:
        inference_service().server_ready()
    except Exception as exc:
        return _reply({"ready": False, "error": f"sql: {type(exc).__name__}"}, 503)
    return _reply({"ready": True})


def _metadata(req: func.HttpRequest) -> func.HttpResponse:
    from shared.inference.service import inference_service

    name, version = _name_version(req)
    return _reply(inference_service().metadata(name, version))


def _model_ready(req: func.HttpRequest) -> func.HttpResponse:
    from shared.inference.service import inference_service

    name, version = _name_version(req)
    ready = inference_service().ready(name, version)
    return _reply({"name": name, "ready": ready}, 200 if ready else 400)


def _infer_request():
    from shared.inference.protocol.types import InferRequest

    return InferRequest


def _infer_response():
    from shared.inference.protocol.types import InferResponse

    return InferResponse


def _infer(req: func.HttpRequest) -> func.HttpResponse:
    from shared.http.requests import parse_json, read_body
    from shared.inference.protocol import binary as oip_binary
    from shared.inference.protocol.types import InferRequest
    from shared.inference.service import inference_service, record_inference

    name, version = _name_version(req)
    started = time.perf_counter()
    try:
        header, binary = oip_binary.split_body(read_body(req), req.headers.get(oip_binary.HEADER))
        body = parse_json(header, InferRequest)
        oip_binary.attach_inputs(body, binary)
    except Exception:  # never reached the service, which counts every call it sees
        record_inference(name, version, (time.perf_counter() - started) * 1000.0, False)
        raise
    response = inference_service().infer(name, version, body)
    wanted = oip_binary.binary_outputs(body, [o.name for o in response.outputs])
    payload, header_length = oip_binary.encode_response(response, wanted)
    if header_length is None:
        return func.HttpResponse(payload, status_code=200, mimetype="application/json")
    return func.HttpResponse(
        payload,
        status_code=200,
        mimetype="application/octet-stream",
        headers={oip_binary.HEADER: str(header_length)},
    )


# Explicit functions (one per route) keep the metadata and the OpenAPI document simple.
@http_route(
    bp,
    "v2/models/{name}",
    ["GET"],
    summary="Model metadata: inputs, outputs, datatypes, shapes, versions.",
    tags=("inference",),
    errors=(400, 404),
    error_body=OipErrorBody,
)
@oip_errors
def oip_model(req: func.HttpRequest) -> func.HttpResponse:
    return _metadata(req)


@http_route(
    bp,
    "v2/models/{name}/versions/{version}",
    ["GET"],
    summary="Metadata of one model version.",
    tags=("inference",),
    errors=(400, 404),
    error_body=OipErrorBody,
)
@oip_errors
def oip_model_version(req: func.HttpRequest) -> func.HttpResponse:
    return _metadata(req)


@http_route(
    bp,
    "v2/models/{name}/ready",
    ["GET"],
    summary="Ready once the session is loaded and warmed with one run.",
    tags=("inference",),
    errors=(400, 404),
    error_body=OipErrorBody,
)
@oip_errors
def oip_model_ready(req: func.HttpRequest) -> func.HttpResponse:
    return _model_ready(req)


@http_route(
    bp,
    "v2/models/{name}/versions/{version}/ready",
    ["GET"],
    summary="Readiness of one model version.",
    tags=("inference",),
    errors=(400, 404),
    error_body=OipErrorBody,
)
@oip_errors
def oip_model_version_ready(req: func.HttpRequest) -> func.HttpResponse:
    return _model_ready(req)


@http_route(
    bp,
    "v2/models/{name}/infer",
    ["POST"],
    summary="Run the newest ready version (Open Inference Protocol request/response).",
    tags=("inference",),
    request=_infer_request,
    response=_infer_response,
    errors=(400, 404, 409, 422),
    error_body=OipErrorBody,
)
@oip_errors
def oip_infer(req: func.HttpRequest) -> func.HttpResponse:
    return _infer(req)


@http_route(
    bp,
    "v2/models/{name}/versions/{version}/infer",
    ["POST"],
    summary="Run one model version.",
    tags=("inference",),
    request=_infer_request,
    response=_infer_response,
    errors=(400, 404, 409, 422),
    error_body=OipErrorBody,
)
@oip_errors
def oip_infer_version(req: func.HttpRequest) -> func.HttpResponse:
    return _infer(req)


@http_route(
    bp,
    "v2/repository/index",
    ["POST"],
    summary="Every registered model version and its state (READY, LOADING, UNAVAILABLE), "
    'as Triton\'s model repository extension gives it; body {"ready": true} keeps READY.',
    tags=("inference",),
    errors=(400,),
    error_body=OipErrorBody,
)
@oip_errors
def oip_repository_index(req: func.HttpRequest) -> func.HttpResponse:
    from shared.http.requests import parse_json
    from shared.inference.protocol.types import RepositoryIndexRequest
    from shared.inference.service import inference_service

    body = req.get_body() or b""
    ready_only = parse_json(body, RepositoryIndexRequest).ready if body.strip() else False
    return _reply(inference_service().repository_index(ready_only=ready_only))


def _stats(req: func.HttpRequest) -> func.HttpResponse:
    from shared.inference.service import inference_service

    name, version = _name_version(req)
    return _reply(inference_service().stats(name, version))


@http_route(
    bp,
    "v2/models/{name}/stats",
    ["GET"],
    summary="Per-version inference counts and durations (Triton's statistics extension).",
    tags=("inference",),
    errors=(400, 404),
    error_body=OipErrorBody,
)
@oip_errors
def oip_model_stats(req: func.HttpRequest) -> func.HttpResponse:
    return _stats(req)


@http_route(
    bp,
    "v2/models/{name}/versions/{version}/stats",
    ["GET"],
    summary="Inference counts and durations of one model version.",
    tags=("inference",),
    errors=(400, 404),
    error_body=OipErrorBody,
)
@oip_errors
def oip_model_version_stats(req: func.HttpRequest) -> func.HttpResponse:
    return _stats(req)
