"""Concurrent single-query searches run as one batch and answer exactly as alone."""

from __future__ import annotations

import threading
import time
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
    batched.batcher.max_batch = 3  # the three good callers fill it: no wait for the delay
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


@pytest.mark.parametrize("compressed", [False, True], ids=["float32", "compressed"])
def test_a_batch_over_several_sets_answers_each_query_as_alone(
    tmp_path: Path, compressed: bool
) -> None:
    """No model named: every set is scanned and the hits merge by distance, ties by
    entity id. Within a set, ties go by row; the ids of set "a" run against its rows,
    so a caller whose k cuts through tied rows must keep its own set's first rows, not
    the smallest ids among the rows the batch's larger k brings."""
    rng = np.random.default_rng(8)
    store, batched, alone = _stacks(tmp_path / "s.db", compress_from=1 if compressed else 10**9)
    first = rng.standard_normal((1500, D)).astype(np.float32)
    second = rng.standard_normal((1500, D)).astype(np.float32)
    second[:40] = first[:40]  # the same rows under other ids, in the other set
    first[41:44] = first[40]  # and ties inside one set
    store.upsert("a", "t", [(f"a{9999 - i:05d}", v.tolist()) for i, v in enumerate(first)])
    store.upsert("b", "t", [(f"b{i:05d}", v.tolist()) for i, v in enumerate(second)])
    queries = rng.standard_normal((8, D)).astype(np.float32)
    queries[:3] = first[[3, 40, 20]]
    top_ks = [1, 2, 3, 9, 4, 2, 30, 5]

    got = together(8, lambda i: batched.search_one(queries[i], top_k=top_ks[i], metric="cosine"))
    for i, hits in enumerate(got):
        want = alone.search(queries[i : i + 1], top_k=top_ks[i], metric="cosine")[0]
        assert hits == want, i
    assert {h.model_id for h in got[0] + got[6]} == {"a", "b"}


def test_callers_with_and_without_metadata_share_a_batch_and_get_what_they_asked(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(9)
    store, batched, alone = _stacks(tmp_path / "s.db", compress_from=10**9)
    vectors = rng.standard_normal((300, D)).astype(np.float32)
    items = [(f"e{i}", v.tolist()) for i, v in enumerate(vectors)]
    store.upsert("m", "t", items, metadata=[{"n": i} for i in range(300)])
    before = batched.batcher.batches

    got = together(
        8,
        lambda i: batched.search_one(
            vectors[i], top_k=2, metric="dot", model_id="m", include_metadata=i % 2 == 0
        ),
    )
    for i, hits in enumerate(got):
        want = alone.search(
            vectors[i : i + 1], top_k=2, metric="dot", model_id="m", include_metadata=i % 2 == 0
        )[0]
        assert hits == want, i
        assert all((h.metadata is not None) == (i % 2 == 0) for h in hits)
    assert batched.batcher.batches - before == 1  # one batch of all eight


def test_a_batch_scans_the_sets_its_latest_caller_found(tmp_path: Path) -> None:
    """A caller looks its sets up in SQL before it joins a batch; a row written after an
    earlier caller's lookup, but before a later caller's, is in the batch both share:
    each caller gets at least what its own lookup found."""
    store, batched, _ = _stacks(tmp_path / "s.db", compress_from=10**9)
    store.upsert("m", "t", [("old", [1.0] + [0.0] * (D - 1))])
    batched.batcher.max_batch = 2  # the batch runs once the second caller joins
    query = np.array([1.0, 1.0] + [0.0] * (D - 2), np.float32)
    results: list[object] = []
    early = threading.Thread(
        target=lambda: results.append(batched.search_one(query, top_k=1, metric="dot"))
    )
    early.start()
    while not batched.batcher.waiting():  # the early caller has looked up and joined
        time.sleep(0.005)
    store.upsert("m", "t", [("new", [1.0, 1.0] + [0.0] * (D - 2))])
    late = batched.search_one(query, top_k=1, metric="dot")
    early.join()
    assert [h.entity_id for h in late] == ["new"]
    assert [h.entity_id for h in results[0]] == ["new"]
