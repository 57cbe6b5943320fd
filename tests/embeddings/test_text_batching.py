"""Concurrent text-embedding calls of one model version run as one batch: each caller
gets its own texts' vectors, equal to embedding them alone within float32 rounding."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from shared.batching import BatchLimits
from shared.embeddings.service import TextEmbeddings
from shared.inference.embedder import (
    EmbeddingInputError,
    TextEmbedder,
    Tokens,
    TooManyTokensError,
)
from tests.support.concurrent import together
from tests.support.pretrained import find_minilm

MINILM = find_minilm()
pytestmark = pytest.mark.skipif(MINILM is None, reason="the MiniLM data package is not installed")


@dataclass(frozen=True)
class Record:
    id: str
    version: int
    metadata: dict = field(default_factory=dict)


class Counting:
    """The real embedder, counting its runs of the model (how many batches ran)."""

    def __init__(self, embedder: TextEmbedder) -> None:
        self.embedder = embedder
        self.calls = 0
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def tokenize(self, texts: list[str], **options) -> Tokens:
        return self.embedder.tokenize(texts, **options)

    def run(self, tokens: Tokens) -> np.ndarray:
        with self.lock:
            self.calls += 1
            self.sizes.append(len(tokens.ids))
        return self.embedder.run(tokens)


class OneModel:
    """The registry's answer for one ready text model (what TextModels looks up in SQL)."""

    def __init__(self, embedder: Counting, options: dict | None = None) -> None:
        self.embedder_ = embedder
        self.options = options or {}

    def record(self, name: str) -> Record:
        return Record("v-1", 1, self.options)

    def embedder(self, record: Record) -> Counting:
        return self.embedder_


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    assert MINILM is not None
    return TextEmbedder(*MINILM)


TEXTS = [
    ["A cat sat on the mat."],
    ["Quarterly revenue rose by four percent.", "Shares fell."],
    ["The train to Utrecht leaves at nine."],
    ["Photosynthesis turns light into chemical energy.", "Leaves are green.", "Hi"],
    ["An exact scan never misses a filtered hit."],
    ["Short."],
]


def test_concurrent_calls_are_embedded_together_and_each_gets_its_own_vectors(embedder) -> None:
    counting = Counting(embedder)
    texts = sum(map(len, TEXTS))  # a batch of exactly that many texts runs once full
    service = TextEmbeddings(OneModel(counting), store=None, batching=BatchLimits(texts, 5000, 64))  # type: ignore[arg-type]
    got = together(len(TEXTS), lambda i: service.embed("minilm", TEXTS[i]))
    assert counting.calls == 1  # six callers, one run of the model
    for texts, out in zip(TEXTS, got, strict=True):
        alone = embedder.embed(texts)
        assert out.vectors.shape == alone.shape and out.model_version == 1
        np.testing.assert_allclose(out.vectors, alone, atol=1e-5)
        cosine = np.einsum("ij,ij->i", out.vectors, alone)
        assert (cosine >= 0.99999).all()


def test_one_callers_bad_input_fails_only_that_caller(embedder) -> None:
    counting = Counting(embedder)
    service = TextEmbeddings(OneModel(counting), store=None, batching=BatchLimits(4, 5000, 64))  # type: ignore[arg-type]
    calls = [["fine text"], ["ok", 7], ["also fine"], ["and this"]]
    got = together(4, lambda i: service.embed("minilm", calls[i]))  # type: ignore[arg-type]
    assert isinstance(got[1], EmbeddingInputError) and got[1].field == "texts[1]"  # its own index
    for i in (0, 2, 3):
        np.testing.assert_allclose(got[i].vectors, embedder.embed(calls[i]), atol=1e-5)


def test_a_large_call_is_not_held_for_company(embedder) -> None:
    counting = Counting(embedder)
    service = TextEmbeddings(OneModel(counting), store=None, batching=BatchLimits(4, 5000, 64))  # type: ignore[arg-type]
    texts = [f"sentence number {i}" for i in range(40)]  # more than a batch holds
    started = time.perf_counter()
    out = service.embed("minilm", texts)
    assert time.perf_counter() - started < 2.5  # not the batcher's 5 s wait for company
    np.testing.assert_allclose(out.vectors, embedder.embed(texts), atol=1e-5)


def test_a_batch_holds_at_most_max_size_texts(embedder) -> None:
    counting = Counting(embedder)
    service = TextEmbeddings(OneModel(counting), store=None, batching=BatchLimits(3, 50, 64))  # type: ignore[arg-type]
    calls = [["a b"], ["c d", "e f"], ["g"], ["h", "i"], ["j k l"], ["m"]]
    got = together(len(calls), lambda i: service.embed("minilm", calls[i]))
    assert counting.sizes and max(counting.sizes) <= 3 and sum(counting.sizes) == 8
    for texts, out in zip(calls, got, strict=True):
        np.testing.assert_allclose(out.vectors, embedder.embed(texts), atol=1e-5)


def test_a_models_registration_overrides_the_settings(embedder) -> None:
    # Batching off in the settings, on for this model: its callers share runs.
    counting = Counting(embedder)
    on = OneModel(counting, {"batch_max_size": "6", "batch_max_delay_ms": "5000"})
    service = TextEmbeddings(on, store=None, batching=None)  # type: ignore[arg-type]
    together(6, lambda i: service.embed("minilm", [f"text {i}"]))
    assert counting.calls == 1
    # Batching on in the settings, off for this model: each caller runs alone.
    counting = Counting(embedder)
    off = OneModel(counting, {"batch_max_size": "1"})
    service = TextEmbeddings(off, store=None, batching=BatchLimits(6, 5000, 64))  # type: ignore[arg-type]
    started = time.perf_counter()
    together(6, lambda i: service.embed("minilm", [f"text {i}"]))
    assert counting.calls == 6 and time.perf_counter() - started < 2.5


def test_token_counts_and_refusals_are_each_callers_own(embedder) -> None:
    # A text over the limit with truncate=False fails its caller before the batch; the
    # others share one run and each gets its own texts' token counts.
    counting = Counting(embedder)
    service = TextEmbeddings(OneModel(counting), store=None, batching=BatchLimits(3, 5000, 64))  # type: ignore[arg-type]
    long = "revenue rose in every region " * 60
    calls = [["a cat", long], ["hello world"], ["the mat", long]]
    got = together(3, lambda i: service.embed("minilm", calls[i], truncate=i != 0, field="input"))
    assert isinstance(got[0], TooManyTokensError) and got[0].field == "input[1]"
    assert counting.calls == 1 and counting.sizes == [3]
    limit = embedder.max_length
    alone = embedder.tokenize(calls[2])
    assert got[1].tokens == [4] and got[1].max_tokens == limit and got[1].truncated == []
    assert list(got[2].tokens) == alone.counts and got[2].truncated == [1]
    np.testing.assert_allclose(got[2].vectors, embedder.embed(calls[2]), atol=1e-5)
