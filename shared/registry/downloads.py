"""Downloading a registered version's bytes from Blob Storage.

A version whose blob was deleted behind the app's back cannot serve again until it is
uploaded again: the model row says so (status `failed` with the reason), so listings,
readiness and every later call tell the same story instead of a 500 per request.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from shared.registry.errors import ModelBlobMissingError
from shared.registry.repository import ModelRecord, ModelRepository
from shared.registry.status import ModelStatus
from shared.storage.blob_store import BlobModelStore


class ModelDownloads:
    def __init__(self, store: BlobModelStore, models: ModelRepository) -> None:
        self.store = store
        self.models = models

    def download(self, record: ModelRecord, dest: Path) -> None:
        """Write the version's bytes to `dest`; ModelBlobMissingError if the blob is gone."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.store.download_to(record.blob_name or "", dest)
        except ResourceNotFoundError:
            reason = (
                f"model {record.name!r} version {record.version} is unavailable: its file "
                f"{self.store.container}/{record.blob_name} was deleted from Blob Storage; "
                "upload the model again"
            )
            self.models.set_status(record.id, ModelStatus.FAILED, error=reason)
            raise ModelBlobMissingError(reason) from None


@cache
def model_downloads() -> ModelDownloads:
    from shared.db.app import database
    from shared.settings import get_settings
    from shared.storage.clients import container

    return ModelDownloads(
        container(get_settings().model_versions_container), ModelRepository(database())
    )
