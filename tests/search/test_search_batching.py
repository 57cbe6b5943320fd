"""Concurrent single-query searches run as one batch and answer exactly as alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.batching import BatchLimits
from shared.embeddings.repository import EmbeddingRepository
from shared.embeddings.service import EmbeddingStore, Limits
from shared.search.cache import IndexCache
from shared.search.repository import SetRepository
from shared.search.service import SearchService
from shared.vectors.errors import DimensionMismatchError
from tests.support.concurrent import together
from tests.support.db import migrated

N, D = 3000, 24


def _stacks(path: Path, compress_from: int):
    """One database; a service that batches (long delay: the batch fills first) and one
    that never does, each with its own cache."""
    db = migrated(path)
    store = EmbeddingStore(EmbeddingRepository(db), Limits(max_dim=64, max_rows=100_000))
    batched = SearchService(
        IndexCache(SetRepository(db), compress_from=compress_from, rows_dir=path.parent / "b"),
        max_dim=64,
        max_queries=64,
        batching=BatchLimits(max_size=8, max_delay_ms=5000, max_queue=64),
    )
    alone = SearchService(
        IndexCache(SetRepository(db), compress_from=compress_from, rows_dir=path.parent / "a"),
        max_dim=64,
        max_queries=64,
    )
    return store, batched, alone


@pytest.mark.parametrize("compressed", [False, True], ids=["float32", "compressed"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_a_batch_gives_each_query_the_rows_and_scores_it_gets_alone(
    tmp_path: Path, metric: str, compressed: bool
) -> None:
    rng = np.random.default_rng(5)
    store, batched, alone = _stacks(tmp_path / "s.db", compress_from=1 if compressed else 10**9)
    vectors = rng.standard_normal((N, D)).astype(np.float32)
    vectors[7] = vectors[8]  # a tie: broken by entity id, batched or not
    store.upsert("m", "t", [(f"e{i:05d}", v.tolist()) for i, v in enumerate(vectors)])
    queries = rng.standard_normal((8, D)).astype(np.float32)
    queries[0] = vectors[7]
    top_ks = [1, 3, 10, 50, 2, 7, 25, 5]  # each caller its own k

    got = together(
        8, lambda i: batched.search_one(queries[i], top_k=top_ks[i], metric=metric, model_id="m")
    )
    for i, hits in enumerate(got):
        want = alone.search(queries[i : i + 1], top_k=top_ks[i], metric=metric, model_id="m")[0]
        assert hits == want, i  # the same rows, in order, with the same float scores
    assert batched.cache.loads == 1  # and the set was scanned as one batch's set


def test_a_query_of_the_wrong_dimension_fails_only_its_caller(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    store, batched, alone = _stacks(tmp_path / "s.db", compress_from=10**9)
    vectors = rng.standard_normal((200, D)).astype(np.float32)
    store.upsert("m", "t", [(f"e{i}", v.tolist()) for i, v in enumerate(vectors)])
    queries = [rng.standard_normal(D + (3 if i == 2 else 0)).astype(np.float32) for i in range(4)]
    got = together(4, lambda i: batched.search_one(queries[i], top_k=3, metric="dot"))
    assert isinstance(got[2], DimensionMismatchError) and "dimension 27" in str(got[2])
    for i in (0, 1, 3):
        assert got[i] == alone.search(queries[i].reshape(1, -1), top_k=3, metric="dot")[0]


def test_without_batching_limits_a_single_query_runs_alone(tmp_path: Path) -> None:
    store, _, alone = _stacks(tmp_path / "s.db", compress_from=10**9)
    store.upsert("m", "t", [("a", [1.0] * D), ("b", [0.5] * D)])
    assert alone.batcher is None
    hits = alone.search_one(np.ones(D, np.float32), top_k=1, metric="dot")
    assert [h.entity_id for h in hits] == ["a"]
