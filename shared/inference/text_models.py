"""Registered sentence-embedding models, served from the process's one session cache.

A text model is a registered ONNX model plus `<name>.tokenizer.json` uploaded beside
it in the models container. Its onnxruntime session lives in the same ``SessionCache``
as the inference sessions (keyed by model id, so a model used both ways loads once),
and ``MAX_SESSIONS`` bounds them all. Only the tokenizers, which are small, are kept
here, each with the model version's token limit (``embedder.token_limit``: the
registration's ``max_tokens``, the tokenizer file, the model's inputs, its position
table). A new version of the model is picked up on the next call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.registry.repository import ModelRecord, ModelRepository
from shared.storage.blob_store import BlobModelStore

if TYPE_CHECKING:
    from shared.inference.embedder import TextEmbedder, TextTokenizer
    from shared.inference.sessions import SessionCache

MAX_TOKENIZER_BYTES = 64 * 1024 * 1024
MAX_TOKENIZERS = 16


class TextModels:
    def __init__(
        self,
        models: ModelRepository,
        fetch_model_file: Callable[[ModelRecord], Path],
        store: BlobModelStore,
        tokenizer_dir: Path,
        sessions: SessionCache,
    ) -> None:
        self.models = models
        self.fetch = fetch_model_file
        self.store = store
        self.tokenizer_dir = tokenizer_dir
        self.sessions = sessions
        self._tokenizers: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, name: str) -> ModelRecord:
        """The newest ready version of ``name``; errors name the request's field "model"."""
        from shared.registry.errors import ModelNotFoundError, ModelNotReadyError

        record = self.models.latest(name, ready_only=True)
        if record is None:
            latest = self.models.latest(name)
            if latest is None:
                raise ModelNotFoundError(f"model {name!r} is not registered", field="model")
            detail = f": {latest.error}" if latest.error else ""
            raise ModelNotReadyError(f"model {name!r} is {latest.status}{detail}", field="model")
        return record

    def get(self, name: str) -> TextEmbedder:
        """An embedder for the newest ready version of `name`, for this call only."""
        return self.embedder(self.record(name))

    def embedder(self, record: ModelRecord) -> TextEmbedder:
        """An embedder for this model version, for this call only.

        Cheap on a warm cache (a lookup and a small object); do not keep it, or its
        session would outlive an eviction from the shared cache.
        """
        from shared.inference.embedder import TextEmbedder

        tokenizer = self._tokenizer(record)
        loaded = self.sessions.get_or_fetch(record.id, lambda: self.fetch(record))
        return TextEmbedder.from_session(
            loaded.session,
            tokenizer,
            model_path=loaded.path,
            model_name=record.name,
            output=(record.metadata or {}).get("embedding_output"),
        )

    def tokenizer(self, record: ModelRecord) -> TextTokenizer:
        """This model version's tokenizer and token limit (no session is loaded)."""
        return self._tokenizer(record)

    def available(self, limit: int = 1000) -> list[ModelRecord]:
        """The newest ready version of each model that can embed text: its inputs take
        ``input_ids`` and its tokenizer is uploaded beside it. A tokenizer this process
        already holds is not looked up in storage again."""
        from shared.registry.status import ModelStatus

        found: list[ModelRecord] = []
        seen: set[str] = set()
        for record in self.models.list(status=ModelStatus.READY, limit=limit):
            if record.name in seen:  # newest version first within a name
                continue
            seen.add(record.name)
            inputs = (record.metadata or {}).get("inputs") or []
            if not any(spec.get("name") == "input_ids" for spec in inputs):
                continue
            with self._lock:
                held = record.id in self._tokenizers
            if held or self.store.exists(f"{record.name}.tokenizer.json"):
                found.append(record)
        return found

    def _tokenizer(self, record: ModelRecord) -> Any:
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

    def _load_tokenizer(self, record: ModelRecord) -> Any:
        from shared.inference.embedder import (
            TextTokenizer,
            fixed_input_length,
            read_tokenizer,
            token_limit,
        )
        from shared.registry.errors import ModelNotReadyError

        tokenizer_blob = f"{record.name}.tokenizer.json"
        if not self.store.exists(tokenizer_blob):
            raise ModelNotReadyError(
                f"model {record.name!r} has no tokenizer: upload {tokenizer_blob} to the "
                f"{self.store.container!r} container beside it",
                field="model",
            )
        self.tokenizer_dir.mkdir(parents=True, exist_ok=True)
        tokenizer_path = self.tokenizer_dir / f"{record.id}.tokenizer.json"
        if not tokenizer_path.exists():
            tmp = tokenizer_path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(self.store.read_bytes(tokenizer_blob, MAX_TOKENIZER_BYTES))
            tmp.replace(tokenizer_path)
        tokenizer = read_tokenizer(tokenizer_path)
        metadata = record.metadata or {}
        limit = token_limit(
            tokenizer,
            registered=metadata.get("max_tokens"),
            input_length=fixed_input_length(metadata.get("inputs")),
            tensors=lambda: [(t.name, t.shape) for t in self.models.tensors(record.id)],
        )
        try:
            return TextTokenizer(tokenizer, limit)
        except ValueError as exc:  # a registered max_tokens below the special tokens
            raise ModelNotReadyError(
                f"model {record.name!r}: its token limit {limit.tokens} ({limit.source}) "
                f"is too small: {exc}; register it again with a larger max_tokens",
                field="model",
            ) from None


@cache
def text_models() -> TextModels:
    from shared.db.app import database
    from shared.inference.service import fetch_model_file, sessions
    from shared.settings import get_settings
    from shared.storage.clients import container

    s = get_settings()
    return TextModels(
        ModelRepository(database()),
        fetch_model_file,
        container(s.models_container),
        s.data_dir / "tokenizers",
        sessions(),
    )
