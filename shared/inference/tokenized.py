"""Registered models that read text through a tokenizer uploaded beside them: what
text-embedding models (``text_models.py``) and cross-encoders (``shared.rerank``) share.

Such a model is a registered ONNX model plus ``<name>.tokenizer.json`` in the models
container. Its onnxruntime session lives in the process's one ``SessionCache`` (keyed by
model id, so a model used several ways loads once), and ``MAX_SESSIONS`` bounds them all.
Only the tokenizers, which are small, are kept here, per model version (the newest
``MAX_TOKENIZERS`` used), each as the subclass's ``build`` makes it from the file: a new
version of the model is picked up on the next call.

The file is downloaded once per version to ``<tokenizer_dir>/<version id>.tokenizer.json``
and written aside, then renamed, so a reader never sees part of it; whichever kind of
model downloads it first, the bytes are the blob's.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from shared.registry.errors import ModelNotFoundError, ModelNotReadyError
from shared.registry.repository import ModelRecord, ModelRepository

if TYPE_CHECKING:
    from shared.inference.embedder import TokenLimit
    from shared.inference.sessions import LoadedSession, SessionCache

MAX_TOKENIZER_BYTES = 64 * 1024 * 1024
MAX_TOKENIZERS = 16

T = TypeVar("T")


class TokenizerStore(Protocol):
    """Where tokenizer files are uploaded (the models container: ``BlobModelStore``)."""

    container: str

    def exists(self, blob_name: str) -> bool: ...

    def read_bytes(self, blob_name: str, max_bytes: int) -> bytes: ...


class TokenizedModels(ABC, Generic[T]):
    """Model versions with their tokenizers; ``build`` says what a version's tokenizer
    file becomes (``T``), once per version while it stays among the newest used."""

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
        self._tokenizers: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def for_app(cls) -> Self:
        """On the process's database, models container, data directory and sessions."""
        from shared.db.app import database
        from shared.inference.service import fetch_model_file, sessions
        from shared.settings import get_settings
        from shared.storage.clients import container

        s = get_settings()
        return cls(
            ModelRepository(database()),
            fetch_model_file,
            container(s.models_container),
            s.data_dir / "tokenizers",
            sessions(),
        )

    @abstractmethod
    def build(self, record: ModelRecord, path: Path) -> T:
        """What this version's tokenizer file at ``path`` serves as."""

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

    def session(self, record: ModelRecord) -> LoadedSession:
        """This version's warmed session from the shared cache, loaded on a miss."""
        return self.sessions.get_or_fetch(record.id, lambda: self.fetch(record))

    def holds(self, record: ModelRecord) -> bool:
        """Whether this version's tokenizer is built in this process."""
        with self._lock:
            return record.id in self._tokenizers

    def _tokenizer(self, record: ModelRecord) -> T:
        with self._lock:
            hit = self._tokenizers.get(record.id)
            if hit is not None:
                self._tokenizers.move_to_end(record.id)
                return hit
        built = self.build(record, self._tokenizer_file(record))
        with self._lock:
            self._tokenizers[record.id] = built
            while len(self._tokenizers) > MAX_TOKENIZERS:
                self._tokenizers.popitem(last=False)
        return built

    def _tokenizer_file(self, record: ModelRecord) -> Path:
        blob = f"{record.name}.tokenizer.json"
        if not self.store.exists(blob):
            raise ModelNotReadyError(
                f"model {record.name!r} has no tokenizer: upload {blob} to the "
                f"{self.store.container!r} container beside it",
                field="model",
            )
        self.tokenizer_dir.mkdir(parents=True, exist_ok=True)
        path = self.tokenizer_dir / f"{record.id}.tokenizer.json"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(self.store.read_bytes(blob, MAX_TOKENIZER_BYTES))
            tmp.replace(path)
        return path

    def token_limit(self, record: ModelRecord, tokenizer: Any) -> TokenLimit:
        """This version's token limit (``embedder.token_limit``) for ``tokenizer`` as its
        file configures it: the registration's ``max_tokens``, the file's truncation, the
        model's fixed input length, its position table (read from the stored tensors only
        when needed)."""
        from shared.inference.embedder import fixed_input_length, token_limit

        metadata = record.metadata or {}
        return token_limit(
            tokenizer,
            registered=metadata.get("max_tokens"),
            input_length=fixed_input_length(metadata.get("inputs")),
            tensors=lambda: [(t.name, t.shape) for t in self.models.tensors(record.id)],
        )
