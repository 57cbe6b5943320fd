"""InferenceService on real parts, without the host: a migrated SQLite registry, the file
cache, real onnxruntime sessions and the inference log; local files stand in for the
blobs (the `harness` fixture in tests/conftest.py)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from shared.batching import BatchLimits
from shared.db.connection import Database
from shared.inference.file_cache import ModelFileCache
from shared.inference.inspect import inspect_model
from shared.inference.repository import InferenceLogRepository
from shared.inference.service import InferenceService
from shared.inference.sessions import SessionCache
from shared.registry.repository import ModelRecord, ModelRepository
from shared.vectors.pool import BufferPool
from tests.support.models import sha256_of


@dataclass
class Harness:
    db: Database
    models: ModelRepository
    log: InferenceLogRepository
    service: InferenceService
    blobs: dict[str, Path]  # blob name -> local file standing in for Blob Storage

    def register(
        self, name: str, path: Path, *, ready: bool = True, options: dict[str, str] | None = None
    ) -> ModelRecord:
        """Registered as ingestion leaves it; ``options`` as an upload's registration
        options (``batch_max_size``...)."""
        blob_name = f"{name}/{sha256_of(path)}.onnx"
        self.blobs[blob_name] = path
        record, _ = self.models.register(
            name,
            sha256=sha256_of(path),
            size_bytes=path.stat().st_size,
            blob_uri=f"local://{blob_name}",
            blob_name=blob_name,
        )
        if ready:
            info = inspect_model(path)
            self.models.replace_tensors(record.id, info.initializers)
            metadata = {**(options or {}), **info.to_metadata()}
            self.models.set_status(record.id, "ready", metadata=metadata)
        return self.models.get(record.id) or record


def build_harness(db: Database, tmp: Path, batching: BatchLimits | None = None) -> Harness:
    """The service on `db` (migrated), its file cache under `tmp`."""
    blobs: dict[str, Path] = {}

    def download(record: ModelRecord, dest: Path) -> None:
        shutil.copyfile(blobs[record.blob_name or ""], dest)

    models, log = ModelRepository(db), InferenceLogRepository(db)
    service = InferenceService(
        models,
        log,
        ModelFileCache(tmp / "cache", 64 * 1024 * 1024),
        SessionCache(4),
        download,
        BufferPool(),
        batching=batching,
    )
    return Harness(db, models, log, service, blobs)
