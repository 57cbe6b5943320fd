"""Model registration: a model blob becomes a versioned row plus an ingestion job.

The uploaded blob (`models/<name>.onnx`) is the "latest upload"; each registered
version's bytes are copied server-side to an immutable name in the versions container
(`model-versions/<name>/<sha256>.onnx`), so a new upload under the same name makes a
new version while the old one stays until deleted. The same bytes again change nothing.
Uploads through the API are staged in their own container. Only what users upload lives
where the blob trigger fires: the registry's own writes never trigger it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import IO

from shared import telemetry
from shared.batching import MODEL_OPTIONS, check_model_option
from shared.errors import ConflictError
from shared.jobs.kinds import JobKind
from shared.jobs.repository import JobRecord
from shared.jobs.submit import JobSubmitter
from shared.registry.repository import ModelRecord, ModelRepository, TensorStats
from shared.settings import get_settings
from shared.storage.blob_store import BlobFile, BlobModelStore, UploadUrl, staging_name
from shared.storage.names import InvalidNameError, model_name_from_blob, validate_model_name


class BlobChangedError(ConflictError):
    """The blob changed or went away while it was being registered: the version this
    event was about no longer exists, and the new one comes with its own event."""

    code = "blob_changed"

    def __init__(self, blob_name: str) -> None:
        super().__init__(f"{blob_name} changed or was deleted while it was being registered")


@dataclass(frozen=True)
class Registration:
    model: ModelRecord
    created: bool
    job: JobRecord | None


#: A staging blob this old belongs to no upload still running.
STAGING_MAX_AGE = timedelta(hours=6)


#: What an upload may say about its model (POST /api/models query, or the blob's own
#: x-ms-meta-* metadata): the output that carries a text embedding, for ambiguous
#: exports, the most tokens one text may have (text models whose tokenizer file and
#: graph do not say it), and the model's own dynamic-batching limits (``shared.batching``).
OPTIONS = ("embedding_output", "max_tokens", *MODEL_OPTIONS)
_OPTION_VALUE = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
#: Bounds of ``max_tokens``: room for a tokenizer's special tokens, and far past the
#: longest contexts of text-embedding models (8192 to 32768 tokens).
MAX_TOKENS_RANGE = (8, 131072)


def _max_tokens_problem(value: str) -> str | None:
    low, high = MAX_TOKENS_RANGE
    if not value.isdigit() or not low <= int(value) <= high:
        return f"must be a whole number of tokens from {low} to {high}"
    return None


def registration_options(given: dict[str, str]) -> dict[str, str]:
    """The known options among `given` (blob metadata keys are case-insensitive)."""
    lowered = {k.lower(): v for k, v in given.items()}
    out = {}
    for key in OPTIONS:
        value = lowered.get(key)
        if value:
            if key == "embedding_output":
                if not _OPTION_VALUE.match(value):
                    raise InvalidNameError(
                        key, value, "is not an output name (1-128 of letters, digits and _.:/-)"
                    )
            else:
                if key == "max_tokens":
                    problem = _max_tokens_problem(value)
                else:
                    problem = check_model_option(key, value)
                if problem:
                    raise InvalidNameError(key, value, problem)
            out[key] = value
    return out


def ingest_job_id(version_id: str) -> str:
    return f"ingest-{version_id}"


class ModelRegistry:
    def __init__(
        self,
        models: ModelRepository,
        *,
        uploads: BlobModelStore,
        versions: BlobModelStore,
        staging: BlobModelStore,
        submitter: JobSubmitter,
        max_bytes: int,
    ) -> None:
        self.models = models
        self.uploads = uploads
        self.versions = versions
        self.staging = staging
        self.submitter = submitter
        self.max_bytes = max_bytes

    def list(
        self, *, name: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[ModelRecord]:
        """Registered versions, newest first per name."""
        return self.models.list(name=name, status=status, limit=limit)

    def get(self, version_id: str) -> tuple[ModelRecord, list[TensorStats]]:
        """One registered version and its initializer statistics."""
        from shared.registry.errors import ModelNotFoundError

        record = self.models.get(version_id)
        if record is None:
            raise ModelNotFoundError(
                "no model version with this id", field="version_id", code="not_found"
            )
        return record, self.models.tensors(record.id)

    def register_blob(self, blob_name: str) -> Registration:
        """For the blob trigger: size from the blob's properties, then hash by streaming.

        A blob over MAX_UPLOAD_BYTES is recorded as a failed version that says why,
        before a byte of it is read.
        """
        from azure.core.exceptions import HttpResponseError

        name = model_name_from_blob(blob_name)
        try:
            return self._register_blob(name, blob_name)
        except HttpResponseError as exc:
            if exc.status_code not in (404, 412):
                raise
            # Overwritten (412: reads and copies are pinned to the version they started
            # with) or deleted since the event; the new version's own event registers it.
            raise BlobChangedError(blob_name) from exc

    def _register_blob(self, name: str, blob_name: str) -> Registration:
        size = self.uploads.size(blob_name)
        if size > self.max_bytes:
            reason = (
                f"the model is {size} bytes, over the limit of {self.max_bytes} (MAX_UPLOAD_BYTES)"
            )
            record = self.models.record_refused(
                name, size_bytes=size, uploaded_as=blob_name, reason=reason
            )
            return Registration(record, False, None)
        blob = self.uploads.hash_pinned(blob_name)
        try:
            options = registration_options(blob.metadata or {})
        except InvalidNameError as exc:  # the uploader's metadata: say so where they look
            reason = (
                f"blob metadata x-ms-meta-{exc.message[:200]}: set a valid value and upload "
                "the model again"
            )
            record = self.models.record_refused(
                name, size_bytes=size, uploaded_as=blob_name, reason=reason
            )
            return Registration(record, False, None)
        return self._register(name, blob, blob_name, options)

    def upload(
        self,
        name: str,
        body: IO[bytes],
        max_bytes: int,
        options: dict[str, str] | None = None,
    ) -> Registration:
        """For POST /api/models: register the body, then publish it as `<name>.onnx`.

        The body streams to a staging blob the trigger ignores, and `<name>.onnx` is
        written only once the version is registered. So the blob trigger, seeing that
        write, finds the hash known and adds nothing, and `created` in the reply is this
        upload's own answer, never lost in a race with the trigger.
        """
        validate_model_name(name)
        options = registration_options(options or {})
        staged = self.staging.upload(staging_name(), body, max_bytes=max_bytes, metadata=options)
        try:
            reg = self._register(name, staged, f"{name}.onnx", options)
            self.uploads.publish(staged, f"{name}.onnx", options)
        finally:
            self.staging.delete(staged.name)
        self.staging.sweep(STAGING_MAX_AGE)  # what an upload killed midway left
        return reg

    def upload_url(self, name: str, ttl: timedelta) -> UploadUrl:
        """For a client that uploads itself (curl, azcopy): a write-only URL for
        `<name>.onnx`. The blob trigger then registers it like any upload, and ingestion
        refuses a model over MAX_UPLOAD_BYTES with that reason in its status."""
        validate_model_name(name)
        return self.uploads.upload_url(f"{name}.onnx", ttl)

    def _register(
        self, name: str, blob: BlobFile, uploaded_as: str, options: dict[str, str]
    ) -> Registration:
        known = self.models.latest_with_sha(name, blob.sha256)
        if known is not None:
            job = self.submitter.jobs.get(ingest_job_id(known.id))
            if job is not None and job.status == "failed" and known.status == "registered":
                job = self.submitter.retry(job.id)  # its message never reached the queue
            return Registration(known, False, job)
        archived = self.versions.archive(blob, name)
        record, created = self.models.register(
            name,
            sha256=blob.sha256,
            size_bytes=blob.size,
            blob_uri=archived.uri,
            blob_name=archived.name,
            content_type=blob.content_type,
            metadata={"uploaded_as": uploaded_as, **options},
        )
        if created:
            telemetry.record("hartonomous.model.size", blob.size, {"model": name})
        job, _ = self.submitter.submit(
            JobKind.MODEL, {"version_id": record.id}, job_id=ingest_job_id(record.id)
        )
        return Registration(record, created, job)


@cache
def model_registry() -> ModelRegistry:
    from shared.db.app import database
    from shared.jobs.service import job_submitter
    from shared.storage.clients import container

    s = get_settings()
    return ModelRegistry(
        ModelRepository(database()),
        uploads=container(s.models_container),
        versions=container(s.model_versions_container),
        staging=container(s.upload_staging_container),
        submitter=job_submitter(),
        max_bytes=s.max_upload_bytes,
    )
