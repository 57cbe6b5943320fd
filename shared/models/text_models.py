"""Registered sentence-embedding models, loaded once per version.

A text model is a registered ONNX model plus `<name>.tokenizer.json` uploaded beside
it in the models container. Embedders are cached by model id; a new version of the
model is picked up on the next call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.db.repos.models import ModelRecord, ModelRepository
from shared.storage.blob_store import BlobModelStore

MAX_TOKENIZER_BYTES = 64 * 1024 * 1024
MAX_LOADED = 4


class TextModels:
    def __init__(
        self,
        models: ModelRepository,
        fetch_model_file: Callable[[ModelRecord], Path],
        store: BlobModelStore,
        tokenizer_dir: Path,
    ) -> None:
        self.models = models
        self.fetch = fetch_model_file
        self.store = store
        self.tokenizer_dir = tokenizer_dir
        self._embedders: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, name: str) -> ModelRecord:
        from shared.models.errors import ModelNotFoundError, ModelNotReadyError

        record = self.models.latest(name, ready_only=True)
        if record is None:
            latest = self.models.latest(name)
            if latest is None:
                raise ModelNotFoundError(f"model {name!r} is not registered", field="model")
            detail = f": {latest.error}" if latest.error else ""
            raise ModelNotReadyError(f"model {name!r} is {latest.status}{detail}", field="model")
        return record

    def get(self, name: str) -> Any:
        """The embedder for the newest ready version of `name`."""
        record = self.record(name)
        with self._lock:
            embedder = self._embedders.get(record.id)
            if embedder is None:
                embedder = self._load(record)
                self._embedders[record.id] = embedder
                while len(self._embedders) > MAX_LOADED:
                    self._embedders.popitem(last=False)
            self._embedders.move_to_end(record.id)
        return embedder

    def _load(self, record: ModelRecord) -> Any:
        from shared.models.embedder import TextEmbedder
        from shared.models.errors import ModelNotReadyError

        tokenizer_blob = f"{record.name}.tokenizer.json"
        if not self.store.exists(tokenizer_blob):
            raise ModelNotReadyError(
                f"model {record.name!r} has no tokenizer: upload {tokenizer_blob} to the "
                f"{self.store.container!r} container beside it"
            )
        self.tokenizer_dir.mkdir(parents=True, exist_ok=True)
        tokenizer_path = self.tokenizer_dir / f"{record.id}.tokenizer.json"
        if not tokenizer_path.exists():
            tmp = tokenizer_path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(self.store.read_bytes(tokenizer_blob, MAX_TOKENIZER_BYTES))
            tmp.replace(tokenizer_path)
        return TextEmbedder(self.fetch(record), tokenizer_path)
