"""Registered cross-encoders, served from the process's one session cache.

A cross-encoder is a registered ONNX model plus `<name>.tokenizer.json` uploaded beside
it in the models container, kept as text-embedding models are
(``shared.inference.tokenized``): its session in the shared ``SessionCache`` (a model
used both by rerank and by the inference routes loads once), its pair tokenizer here per
model version, with the version's token limit (``embedder.token_limit``, the one rule for
every model read through a tokenizer). A new version of the model is picked up on the
next call.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from shared.inference.tokenized import TokenizedModels
from shared.registry.repository import ModelRecord

if TYPE_CHECKING:
    from shared.inference.embedder import TokenLimit
    from shared.rerank.pairs import PairTokenizer
    from shared.rerank.reranker import Reranker


class CrossEncoders(TokenizedModels["tuple[PairTokenizer, TokenLimit]"]):
    def reranker(self, record: ModelRecord) -> Reranker:
        """A reranker for this model version, for this call only: cheap on a warm cache
        (two lookups and a small object); kept, it would hold its session past an
        eviction from the shared cache."""
        from shared.rerank.reranker import Reranker

        tokenizer, limit = self._tokenizer(record)
        return Reranker(self.session(record), tokenizer, record, limit)

    def build(self, record: ModelRecord, path: Path) -> tuple[PairTokenizer, TokenLimit]:
        from shared.inference.embedder import read_tokenizer
        from shared.rerank.pairs import PairTokenizer

        tokenizer = read_tokenizer(path)
        # Read while the file's own truncation is still set: PairTokenizer turns it off.
        limit = self.token_limit(record, tokenizer)
        return PairTokenizer(tokenizer), limit


@cache
def cross_encoders() -> CrossEncoders:
    """The process's cross-encoders."""
    return CrossEncoders.for_app()
