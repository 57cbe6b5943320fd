"""Exact search over embeddings in SQLite: correctness, coherence with writes, pooling."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from shared.embeddings.repository import EmbeddingRepository
from shared.embeddings.service import EmbeddingStore, Limits
from shared.search.cache import IndexCache
from shared.search.repository import SetRepository
from shared.search.service import SearchService
from shared.vectors.errors import DimensionMismatchError
from shared.vectors.pool import BufferPool
from tests.search.reference import reference
from tests.support.db import migrated
from tests.support.isolated import run_isolated


def _stack(path: Path, pool: BufferPool | None = None):
    db = migrated(path)
    repo = EmbeddingRepository(db)
    store = EmbeddingStore(repo, Limits(max_dim=4096, max_rows=100_000))
    service = SearchService(
        IndexCache(SetRepository(repo.db)), max_dim=4096, max_queries=64, pool=pool
    )
    return store, service


def _fill(store: EmbeddingStore, model: str, vectors: np.ndarray, etype: str = "t") -> list[str]:
    ids = [f"{model}-{i}" for i in range(len(vectors))]
    store.upsert(model, etype, [(e, v.tolist()) for e, v in zip(ids, vectors, strict=True)])
    return ids


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_top_k_matches_a_float64_reference(tmp_path: Path, metric: str) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, 32)).astype(np.float32)
    store, service = _stack(tmp_path / "s.db")
    ids = _fill(store, "m", vectors)
    q = rng.standard_normal(32).astype(np.float32)
    hits = service.search(q[None, :], top_k=10, metric=metric)[0]
    assert [h.entity_id for h in hits] == [ids[i] for i in reference(vectors, q, 10, metric)]
    best = hits[0]
    if metric == "cosine":
        assert best.similarity == pytest.approx(1 - best.distance)
    if metric == "euclidean":
        assert best.distance == pytest.approx(
            float(np.linalg.norm(vectors[ids.index(best.entity_id)] - q)), rel=1e-5
        )
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)


def test_a_write_is_visible_to_the_next_search_and_reloads_only_then(tmp_path: Path) -> None:
    store, service = _stack(tmp_path / "s.db")
    _fill(store, "m", np.eye(4, dtype=np.float32))
    q = np.float32([[0, 0, 0, 1]])
    assert service.search(q, top_k=1, metric="cosine")[0][0].entity_id == "m-3"
    loads = service.cache.loads
    service.search(q, top_k=1, metric="cosine")
    assert service.cache.loads == loads  # unchanged data: no reload
    store.upsert("m", "t", [("new", [0, 0, 0.1, 1])])
    hits = service.search(q, top_k=2, metric="euclidean")[0]
    assert service.cache.loads == loads + 1
    assert [h.entity_id for h in hits] == ["m-3", "new"]
    store.delete("m-3", "m", "t")
    assert service.search(q, top_k=1, metric="cosine")[0][0].entity_id == "new"


def test_another_process_sees_writes_through_the_version_check(tmp_path: Path) -> None:
    store_a, service_a = _stack(tmp_path / "shared.db")
    store_b, service_b = _stack(tmp_path / "shared.db")  # own connection and cache
    _fill(store_a, "m", np.eye(3, dtype=np.float32))
    q = np.float32([[1, 1, 0]])
    assert len(service_b.search(q, top_k=5, metric="dot")[0]) == 3
    store_a.upsert("m", "t", [("far", [5, 5, 0])])
    assert service_b.search(q, top_k=1, metric="dot")[0][0].entity_id == "far"


def test_without_filters_hits_from_every_set_are_merged(tmp_path: Path) -> None:
    store, service = _stack(tmp_path / "s.db")
    store.upsert("m1", "t", [("a", [1, 0]), ("b", [0, 1])])
    store.upsert("m2", "t", [("c", [0.9, 0.1])])
    store.upsert("m3", "t", [("d", [1, 0, 0])])  # other dimension: not a candidate
    hits = service.search(np.float32([[1, 0]]), top_k=2, metric="cosine")[0]
    assert [(h.entity_id, h.model_id) for h in hits] == [("a", "m1"), ("c", "m2")]
    only = service.search(np.float32([[1, 0]]), top_k=5, metric="cosine", model_id="m2")[0]
    assert [h.entity_id for h in only] == ["c"]


def test_dimension_mismatch_names_the_stored_dimension(tmp_path: Path) -> None:
    store, service = _stack(tmp_path / "s.db")
    store.upsert("m", "t", [("a", [1, 0, 0])])
    with pytest.raises(DimensionMismatchError, match=r"dimension 2 .* \(dimension 3\)"):
        service.search(np.float32([[1, 0]]), top_k=1, metric="cosine", model_id="m")
    assert service.search(np.float32([[1, 0]]), top_k=1, metric="cosine", model_id="x") == [[]]


def test_a_batch_gets_one_list_per_query(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    store, service = _stack(tmp_path / "s.db")
    ids = _fill(store, "m", vectors)
    queries = rng.standard_normal((7, 16)).astype(np.float32)
    batch = service.search(queries, top_k=5, metric="euclidean")
    assert len(batch) == 7
    for q, hits in zip(queries, batch, strict=True):
        assert [h.entity_id for h in hits] == [
            ids[i] for i in reference(vectors, q, 5, "euclidean")
        ]


def _search_growth(folder: Path) -> tuple[int, int, int, int]:
    """Peak heap growth over 30 warm searches; the pool's misses after warm-up, then its
    hits and misses."""
    rng = np.random.default_rng(9)
    n, d = SCORE_ROWS, 64
    store, service = _stack(folder / "s.db", pool=BufferPool())
    _fill(store, "m", rng.standard_normal((n, d)).astype(np.float32))
    q = rng.standard_normal((1, d)).astype(np.float32)
    for _ in range(3):  # warm-up: load the set, prepare the metric, fill the pool
        service.search(q, top_k=10, metric="cosine")
    misses_after_warmup = service.pool.stats().misses
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for _ in range(30):
        service.search(q, top_k=10, metric="cosine")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stats = service.pool.stats()
    return peak - base, misses_after_warmup, stats.hits, stats.misses


SCORE_ROWS = 20_000


def test_steady_state_searches_allocate_no_new_large_buffers(tmp_path: Path) -> None:
    growth, misses_after_warmup, hits, misses = run_isolated(_search_growth, tmp_path)
    score_buffer = SCORE_ROWS * 4
    assert growth < score_buffer / 2, f"peak grew by {growth} bytes"
    assert hits >= 30 and misses == misses_after_warmup  # every rent was a reuse


def test_the_index_cache_is_bounded_and_reloads_what_it_dropped(tmp_path: Path) -> None:
    store, service = _stack(tmp_path / "s.db")
    rng = np.random.default_rng(2)
    _fill(store, "a", rng.standard_normal((1000, 16)).astype(np.float32))
    _fill(store, "b", rng.standard_normal((1000, 16)).astype(np.float32))
    one_set = 1000 * 16 * 4
    service.cache.max_bytes = one_set + one_set // 2  # room for one set only
    q = rng.standard_normal((1, 16)).astype(np.float32)
    service.search(q, top_k=3, metric="dot", model_id="a")
    assert service.cache.nbytes == one_set
    service.search(q, top_k=3, metric="dot", model_id="b")  # evicts "a"
    assert service.cache.nbytes == one_set
    loads = service.cache.loads
    hits = service.search(q, top_k=3, metric="dot", model_id="a")[0]
    assert service.cache.loads == loads + 1  # "a" came back from SQL
    assert [h.model_id for h in hits] == ["a", "a", "a"]
    service.search(q, top_k=3, metric="dot", model_id="a")
    assert service.cache.loads == loads + 1  # and stays while it is the recent one
