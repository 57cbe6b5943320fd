"""Registered sentence-embedding models, served from the process's one session cache.

A text model is a registered ONNX model plus `<name>.tokenizer.json` uploaded beside
it in the models container, kept as ``tokenized.py`` keeps such models: its session in
the shared ``SessionCache``, its tokenizer here per model version, each with the
version's token limit (``embedder.token_limit``: the registration's ``max_tokens``, the
tokenizer file, the model's inputs, its position table). A new version of the model is
picked up on the next call.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from shared.inference.tokenized import TokenizedModels
from shared.registry.repository import ModelRecord

if TYPE_CHECKING:
    from shared.inference.embedder import TextEmbedder, TextTokenizer


class TextModels(TokenizedModels["TextTokenizer"]):
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
        loaded = self.session(record)
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
            if self.holds(record) or self.store.exists(f"{record.name}.tokenizer.json"):
                found.append(record)
        return found

    def build(self, record: ModelRecord, path: Path) -> TextTokenizer:
        from shared.inference.embedder import TextTokenizer, read_tokenizer
        from shared.registry.errors import ModelNotReadyError

        tokenizer = read_tokenizer(path)
        limit = self.token_limit(record, tokenizer)
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
    """The process's text models."""
    return TextModels.for_app()
