"""Registered cross-encoders, served from the process's one session cache.

A cross-encoder is a registered ONNX model plus `<name>.tokenizer.json` uploaded beside
it in the models container, as for text-embedding models. Its onnxruntime session lives
in the same ``SessionCache`` as every other model (keyed by model id, so a model used
both by rerank and by the inference routes loads once), and ``MAX_SESSIONS`` bounds them
all. Only the tokenizers, which are small, are kept here, per model version: a new
version of the model is picked up on the next call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from shared.registry.errors import ModelNotFoundError, ModelNotReadyError
from shared.registry.repository import ModelRecord, ModelRepository

if TYPE_CHECKING:
    from shared.inference.sessions import SessionCache
    from shared.rerank.pairs import PairTokenizer
    from shared.rerank.reranker import Reranker

MAX_TOKENIZER_BYTES = 64 * 1024 * 1024
MAX_TOKENIZERS = 16


class TokenizerStore(Protocol):
    """Where tokenizer files are uploaded (the models container: ``BlobModelStore``)."""

    container: str

    def exists(self, blob_name: str) -> bool: ...

    def read_bytes(self, blob_name: str, max_bytes: int) -> bytes: ...


class CrossEncoders:
    def __init__(
        self,
        models: ModelRepository,
        fetch_model_file: Callable[[ModelRecord], Path],
        store: TokenizerStore,
        tokenizer_dir: Path,
        sessions: SessionCache,
    ) -> None:
        self.models = models
        self.fetch = fetch_model_file
        self.store = store
        self.tokenizer_dir = tokenizer_dir
        self.sessions = sessions
        self._tokenizers: OrderedDict[str, PairTokenizer] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, name: str) -> ModelRecord:
        """The newest ready version of ``name``; errors name the request's field "model"."""
        record = self.models.latest(name, ready_only=True)
        if record is None:
            latest = self.models.latest(name)
            if latest is None:
                raise ModelNotFoundError(f"model {name!r} is not registered", field="model")
            detail = f": {latest.error}" if latest.error else ""
            raise ModelNotReadyError(f"model {name!r} is {latest.status}{detail}", field="model")
        return record

    def reranker(self, record: ModelRecord) -> Reranker:
        """A reranker for this model version, for this call only: cheap on a warm cache
        (two lookups and a small object); kept, it would hold its session past an
        eviction from the shared cache."""
        from shared.rerank.reranker import Reranker

        tokenizer = self._tokenizer(record)
        loaded = self.sessions.get_or_fetch(record.id, lambda: self.fetch(record))
        return Reranker(loaded, tokenizer, record)

    def _tokenizer(self, record: ModelRecord) -> PairTokenizer:
        with self._lock:
            hit = self._tokenizers.get(record.id)
            if hit is not None:
                self._tokenizers.move_to_end(record.id)
                return hit
        tokenizer = self._load_tokenizer(record)
        with self._lock:
            self._tokenizers[record.id] = tokenizer
            while len(self._tokenizers) > MAX_TOKENIZERS:
                self._tokenizers.popitem(last=False)
        return tokenizer

    def _load_tokenizer(self, record: ModelRecord) -> PairTokenizer:
        from shared.rerank.pairs import PairTokenizer

        blob = f"{record.name}.tokenizer.json"
        if not self.store.exists(blob):
            raise ModelNotReadyError(
                f"model {record.name!r} has no tokenizer: upload {blob} to the "
                f"{self.store.container!r} container beside it",
                field="model",
            )
        self.tokenizer_dir.mkdir(parents=True, exist_ok=True)
        # The same file, by version id, as text-embedding models keep it: either writer's
        # copy is the blob's bytes, and each lands whole (written aside, then renamed).
        path = self.tokenizer_dir / f"{record.id}.tokenizer.json"
        if not path.exists():
            tmp = path.with_suffix(f".{threading.get_ident()}.rerank.tmp")
            tmp.write_bytes(self.store.read_bytes(blob, MAX_TOKENIZER_BYTES))
            tmp.replace(path)
        return PairTokenizer.from_file(path)


@cache
def cross_encoders() -> CrossEncoders:
    from shared.db.app import database
    from shared.inference.service import fetch_model_file, sessions
    from shared.settings import get_settings
    from shared.storage.clients import container

    s = get_settings()
    return CrossEncoders(
        ModelRepository(database()),
        fetch_model_file,
        container(s.models_container),
        s.data_dir / "tokenizers",
        sessions(),
    )
