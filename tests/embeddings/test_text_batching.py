"""Concurrent text-embedding calls of one model version run as one batch: each caller
gets its own texts' vectors, equal to embedding them alone within float32 rounding."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from shared.batching import BatchLimits
from shared.embeddings.service import TextEmbeddings
from shared.inference.embedder import EmbeddingInputError, TextEmbedder
from tests.support.concurrent import together
from tests.support.pretrained import find_minilm

MINILM = find_minilm()
pytestmark = pytest.mark.skipif(MINILM is None, reason="the MiniLM data package is not installed")


@dataclass(frozen=True)
class Record:
    id: str
    version: int


class Counting:
    """The real embedder, counting its calls (how many batches ran)."""

    def __init__(self, embedder: TextEmbedder) -> None:
        self.embedder = embedder
        self.calls = 0
        self.lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        with self.lock:
            self.calls += 1
        return self.embedder.embed(texts)


class OneModel:
    """The registry's answer for one ready text model (what TextModels looks up in SQL)."""

    def __init__(self, embedder: Counting) -> None:
        self.embedder_ = embedder

    def record(self, name: str) -> Record:
        return Record("v-1", 1)

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
    service = TextEmbeddings(OneModel(counting), store=None, batching=BatchLimits(6, 5000, 64))  # type: ignore[arg-type]
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
    texts = [f"sentence number {i}" for i in range(40)]  # more than BATCHED_TEXTS
    started = time.perf_counter()
    out = service.embed("minilm", texts)
    assert time.perf_counter() - started < 2.5  # not the batcher's 5 s wait for company
    np.testing.assert_allclose(out.vectors, embedder.embed(texts), atol=1e-5)
