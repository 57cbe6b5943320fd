"""Rerank: a query and documents in, the documents ordered by a cross-encoder's relevance.

A cross-encoder is a sequence-classification model over (query, document) pairs: inputs
``input_ids`` with any of ``attention_mask`` and ``token_type_ids``, as the model declares
them; one float output of logits, ``[batch, 1]`` (or ``[batch]``) or ``[batch, 2]``.
Relevance is a probability in [0, 1], as Cohere's and Hugging Face TEI's rerank return it:

- one logit: its sigmoid (what TEI returns unless asked for ``raw_scores``, and what
  sentence-transformers' ``CrossEncoder`` applies to one-label models);
- two logits: the softmax probability of class 1 ("relevant"), which is the sigmoid of
  the difference of the two logits.

The sigmoid is monotonic, so the order is the logits' order either way.

Pairs are cut on the document side only (``pairs.py``) to the model's limit, found as
for text-embedding models (``shared.inference.embedder.token_limit``): the registration's
``max_tokens`` when set, else the tokenizer file's truncation length, else
``DEFAULT_MAX_TOKENS`` (512); a fixed sequence dimension of the model or a smaller
position table lowers it, since a longer pair would fail in the model. Each call's pairs
run sorted by length in runs of ``RUN_ROWS`` (little compute goes to padding; the
attention mask keeps padding out of the scores), and concurrent calls of one model
version run as one batch (``shared.batching``, rows = pairs). Every call, failed ones
too, records the inference metrics and queues one ``inference_log`` row (rows = pairs
scored).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from shared.batching import Batchers, BatchLimits, limits_from_settings
from shared.inference.repository import InferenceLogRepository
from shared.inference.service import log_inference
from shared.registry.repository import ModelRecord
from shared.rerank.models import CrossEncoders
from shared.rerank.pairs import EncodedPairs
from shared.rerank.reranker import Reranker


@dataclass(frozen=True)
class Ranking:
    """One call's answer: the scores in the documents' order, and the indices of the
    ``top_n`` best, best first (ties in the documents' order)."""

    model_version: int
    scores: np.ndarray
    order: list[int]
    pairs: EncodedPairs
    limit: int


@dataclass(frozen=True)
class _Pairs:
    reranker: Reranker
    ids: list[list[int]]
    type_ids: list[list[int]]


class RerankService:
    """Rerank with registered cross-encoders, log and measure every call."""

    def __init__(
        self,
        models: CrossEncoders,
        log: InferenceLogRepository,
        batching: BatchLimits | None = None,
    ) -> None:
        """`batching`: concurrent calls of one model version run as one batch of at most
        its max size in pairs (None: each alone, unless the model's registration sets
        its own ``batch_max_size``)."""
        self.models = models
        self.log = log
        self.limits = batching or BatchLimits(1, 0.0, 1)
        self.batchers: Batchers[_Pairs, np.ndarray] = Batchers("rerank", self._run_batch)

    def rerank(
        self,
        model: str,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        max_tokens_per_doc: int | None = None,
    ) -> Ranking:
        start = time.perf_counter()
        record: ModelRecord | None = None
        rows = 0  # pairs scored: none for a call refused before the model ran
        try:
            record = self.models.record(model)
            reranker = self.models.reranker(record)
            pairs = reranker.encode(query, documents, max_tokens_per_doc)
            limits = self.limits.for_model(record.metadata)
            n = len(pairs)
            if not limits.enabled or n >= limits.max_size:  # a batch already
                scores = reranker.score(pairs.ids, pairs.type_ids)
            else:
                item = _Pairs(reranker, pairs.ids, pairs.type_ids)
                scores = self.batchers.get(limits).submit(record.id, item, n)
            rows = n
        except Exception as exc:
            log_inference(self.log, model, None, record, start, rows, None, exc)
            raise
        # No confidence: a relevance score is not a classifier's confidence.
        log_inference(self.log, model, None, record, start, rows, None, None)
        order = np.argsort(-scores, kind="stable")
        if top_n is not None:
            order = order[:top_n]
        return Ranking(record.version, scores, order.tolist(), pairs, reranker.limit.tokens)

    @staticmethod
    def _run_batch(key: Hashable, items: Sequence[_Pairs]) -> list[np.ndarray]:
        """Every caller's pairs in one scoring (one version: one session), split back per
        caller. Padding to a longer neighbour moves a score by float32 rounding only."""
        ids = [row for item in items for row in item.ids]
        type_ids = [row for item in items for row in item.type_ids]
        scores = items[0].reranker.score(ids, type_ids)
        bounds = np.cumsum([0, *(len(item.ids) for item in items)])
        return [scores[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@cache
def rerank_service() -> RerankService:
    """Rerank on the registered models, the process's sessions, the inference log."""
    from shared.db.app import database
    from shared.rerank.models import cross_encoders

    return RerankService(
        cross_encoders(), InferenceLogRepository(database()), limits_from_settings()
    )
