"""The model job: make a registered model servable.

Registration (``shared.registry``) records a version and submits a ``model`` job; this
handler downloads the version into the model file cache, inspects the graph, checks
onnxruntime can load it and records its tensors, so the version is listed ready only
once inference can run it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from shared.jobs.runner import PermanentJobError
from shared.registry.repository import ModelRecord, ModelRepository
from shared.registry.shapes import ModelPayload
from shared.registry.status import ModelStatus

log = logging.getLogger(__name__)


def _missing_blob(exc: Exception) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    from shared.registry.errors import ModelBlobMissingError

    return isinstance(exc, ResourceNotFoundError | ModelBlobMissingError)


class ModelIngestion:
    """Download a registered model, verify it, record its tensors and metadata."""

    def __init__(
        self,
        models: ModelRepository,
        fetch_model_file: Callable[[ModelRecord], Path],
        max_bytes: int | None = None,
    ) -> None:
        self.models = models
        self.fetch = fetch_model_file
        self.max_bytes = max_bytes

    def __call__(self, job_id: str, payload: ModelPayload) -> dict[str, Any]:
        from shared.inference.inspect import inspect_model
        from shared.inference.sessions import check_loadable
        from shared.registry.errors import ModelValidationError

        record = self.models.get(payload.version_id)
        if record is None:
            raise PermanentJobError(f"model version {payload.version_id!r} is not registered")
        size = record.size_bytes or 0
        if self.max_bytes is not None and size > self.max_bytes:
            # Blobs written straight to the container (or through an upload URL) meet
            # the same limit as POST /api/models, here, before any download.
            reason = (
                f"the model is {size} bytes, over the limit of {self.max_bytes} (MAX_UPLOAD_BYTES)"
            )
            self.models.set_status(record.id, ModelStatus.FAILED, error=reason)
            raise PermanentJobError(reason)
        self.models.set_status(record.id, ModelStatus.INGESTING)
        try:
            path = self.fetch(record)
        except Exception as exc:
            if _missing_blob(exc):
                from shared.registry.errors import ModelBlobMissingError

                reason = (
                    exc.reason
                    if isinstance(exc, ModelBlobMissingError)
                    else f"the blob {record.blob_name!r} no longer exists"
                )
                self.models.set_status(record.id, ModelStatus.FAILED, error=reason)
                raise PermanentJobError(reason) from exc
            raise
        try:
            info = inspect_model(path)
            check_loadable(path)
        except ModelValidationError as exc:
            self.models.set_status(record.id, ModelStatus.FAILED, error=exc.reason)
            raise PermanentJobError(exc.reason) from exc
        problem = _embedding_output_problem(record.metadata.get("embedding_output"), info)
        if problem:
            self.models.set_status(record.id, ModelStatus.FAILED, error=problem)
            raise PermanentJobError(problem)
        self.models.replace_tensors(record.id, info.initializers)
        metadata = {**record.metadata, **info.to_metadata()}
        self.models.set_status(record.id, ModelStatus.READY, metadata=metadata)
        return {
            "version_id": record.id,
            "name": record.name,
            "version": record.version,
            "inputs": len(info.inputs),
            "outputs": len(info.outputs),
            "parameters": info.parameter_count,
            "tensors": len(info.initializers),
        }

    def give_up(self, payload: ModelPayload, reason: str) -> None:
        """The last attempt failed: the model says why instead of staying 'ingesting'."""
        self.models.set_status(payload.version_id, ModelStatus.FAILED, error=reason)


def _embedding_output_problem(name: str | None, info: Any) -> str | None:
    """A registration that names its embedding output must name a usable one."""
    if not name:
        return None
    outputs = {o.name: o for o in info.outputs}
    out = outputs.get(name)
    if out is None:
        return f"embedding_output {name!r} is not an output of the model; it has " + ", ".join(
            repr(n) for n in outputs
        )
    if (
        out.datatype not in ("FP16", "FP32", "FP64")
        or out.shape is None
        or len(out.shape) not in (2, 3)
    ):
        return (
            f"embedding_output {name!r} is {out.datatype} {list(out.shape or [])}: a text "
            "embedding must be float [batch, hidden] or [batch, sequence, hidden]"
        )
    return None


@cache
def model_ingestion() -> ModelIngestion:
    from shared.db.app import database
    from shared.inference.service import fetch_model_file
    from shared.settings import get_settings

    return ModelIngestion(
        ModelRepository(database()), fetch_model_file, get_settings().max_upload_bytes
    )
