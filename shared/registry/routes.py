"""Model registration: the blob trigger on the models container, and an HTTP upload.

No `from __future__ import annotations` here: the Functions worker reads the blob
trigger's parameter annotation at index time to pick the SDK-type binding.
"""

import io
import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_binding

from shared.http.requests import RequestError, handle_errors, read_query
from shared.http.responses import json_response
from shared.http.routing import http_route
from shared.registry.shapes import (
    ModelDetail,
    ModelList,
    ModelOut,
    ModelQuery,
    UploadAccepted,
    UploadQuery,
    UploadUrlOut,
    UploadUrlQuery,
)
from shared.settings import binding_name

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.blob_trigger(
    arg_name="blob",
    path=binding_name("MODELS_CONTAINER") + "/{name}.onnx",
    connection="AzureWebJobsStorage",
    source=func.BlobSource.EVENT_GRID,
)
def register_model_blob(blob: blob_binding.BlobClient) -> None:
    """A new or changed `<name>.onnx` in the models container: register it.

    Bound as an SDK BlobClient, not an InputStream: the registry reads the size from the
    blob's properties and hashes it by streaming, so a multi-GB model never sits whole in
    this worker's memory. A name that is no model (`a/b.onnx`: the trigger path matches
    nested names too) is ignored with one warning: retrying could never register it.
    """
    from shared.errors import InvalidInputError
    from shared.registry.service import BlobChangedError, model_registry

    blob_name = blob.blob_name
    try:
        reg = model_registry().register_blob(blob_name)
    except InvalidInputError as exc:  # a name that is no model: a retry cannot help
        log.warning("ignored blob %s: %s", blob_name, exc.reason)
        return
    except BlobChangedError as exc:  # a retry could never see this version again
        log.info("skipped: %s; its new version registers on its own event", exc.message)
        return
    if reg.model.status == "failed" and reg.job is None:
        log.warning("model %s refused: %s", reg.model.name, reg.model.error)
        return
    log.info(
        "model %s v%s %s (job %s)",
        reg.model.name,
        reg.model.version,
        "registered" if reg.created else "already registered",
        reg.job.id if reg.job else "-",
    )


@http_route(
    bp,
    "models",
    ["POST"],
    summary="Upload an ONNX model (the body is the file); registers it and queues ingestion.",
    tags=("models",),
    query=UploadQuery,
    response=UploadAccepted,
    status=202,
    errors=(400, 413),
)
@handle_errors
def upload_model(req: func.HttpRequest) -> func.HttpResponse:
    from shared.registry.service import model_registry
    from shared.settings import get_settings

    q = read_query(req, UploadQuery)
    limit = get_settings().max_upload_bytes
    body = req.get_body() or b""
    if not body:
        raise RequestError(400, "empty_body", "the request body must be the .onnx file", "body")
    if len(body) > limit:
        raise RequestError(413, "body_too_large", f"model is {len(body)} bytes; limit {limit}")
    reg = model_registry().upload(q.name, io.BytesIO(body), limit, q.options())
    job_id = reg.job.id if reg.job else None
    out = UploadAccepted(
        model=ModelOut.of(reg.model),
        created=reg.created,
        job_id=job_id,
        job_url=f"/api/jobs/{job_id}" if job_id else None,
    )
    headers = {"Location": out.job_url} if out.job_url else None
    return json_response(out.model_dump(), 202, headers=headers)


@http_route(
    bp,
    "models/upload-url",
    ["POST"],
    summary="A write-only URL to PUT a model of any size straight to Blob Storage.",
    tags=("models",),
    query=UploadUrlQuery,
    response=UploadUrlOut,
    errors=(400, 501),
)
@handle_errors
def model_upload_url(req: func.HttpRequest) -> func.HttpResponse:
    """For models too big for a request body: the client streams the file to Blob
    Storage itself, and the blob trigger registers it as it does any upload."""
    from datetime import timedelta

    from shared.registry.service import model_registry
    from shared.settings import get_settings

    q = read_query(req, UploadUrlQuery)
    up = model_registry().upload_url(q.name, timedelta(seconds=q.expires_in))
    out = UploadUrlOut(
        url=up.url,
        headers={
            "x-ms-blob-type": "BlockBlob",
            "Content-Type": "application/octet-stream",
            **{f"x-ms-meta-{key}": value for key, value in q.options().items()},
        },
        blob=f"{get_settings().models_container}/{up.blob_name}",
        expires_at=up.expires_at.isoformat(timespec="seconds"),
        max_bytes=get_settings().max_upload_bytes,
    )
    return json_response(out.model_dump())


@http_route(
    bp,
    "models",
    ["GET"],
    summary="Registered models, newest version first per name.",
    tags=("models",),
    query=ModelQuery,
    response=ModelList,
)
@handle_errors
def list_models(req: func.HttpRequest) -> func.HttpResponse:
    from shared.registry.service import model_registry

    q = read_query(req, ModelQuery)
    records = model_registry().list(name=q.name, status=q.status, limit=q.limit)
    return json_response(ModelList(models=[ModelOut.of(r) for r in records]).model_dump())


@http_route(
    bp,
    "models/{version_id}",
    ["GET"],
    summary="One registered model version with its initializer statistics.",
    tags=("models",),
    response=ModelDetail,
    errors=(404,),
)
@handle_errors
def get_model(req: func.HttpRequest) -> func.HttpResponse:
    from dataclasses import asdict

    from shared.registry.service import model_registry

    record, tensors = model_registry().get(req.route_params.get("version_id", ""))
    return json_response(
        ModelDetail(
            **ModelOut.of(record).model_dump(), tensors=[asdict(t) for t in tensors]
        ).model_dump()
    )
