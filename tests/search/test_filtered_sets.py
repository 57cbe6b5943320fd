"""Metadata stored with the rows and kept with loaded sets, on real SQLite and Azurite:
written and replaced with the vectors, updated alone (the set reloads), loaded into the
index cache, carried by snapshots of compressed sets; a snapshot of the older format is
stale."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from azure.storage.blob import BlobServiceClient

from shared.batching import BatchLimits
from shared.db.connection import open_database
from shared.embeddings.repository import EmbeddingRepository
from shared.embeddings.service import EmbeddingStore, Limits
from shared.errors import InvalidInputError, NotFoundError
from shared.search import snapshot_format
from shared.search import snapshots as snap
from shared.search.cache import IndexCache
from shared.search.metadata_filter import parse_filter
from shared.search.repository import SetRepository
from shared.search.service import SearchService
from shared.vectors.pool import BufferPool
from tests.search.reference import METRICS, reference
from tests.support.concurrent import together
from tests.support.db import migrated

MODEL, ETYPE, DIM = "m-meta", "t", 12


class CountingRepo(SetRepository):
    """The real repository, counting full set reads from SQL."""

    row_reads = 0

    def load_rows(self, model_id: str, embedding_type: str):
        self.row_reads += 1
        return super().load_rows(model_id, embedding_type)


def _metadata(i: int) -> dict | None:
    if i % 5 == 4:
        return None
    return {"kind": "even" if i % 2 == 0 else "odd", "rank": i, "tags": [f"t{i % 3}"]}


@pytest.fixture
def stack(tmp_path: Path):
    db_path = tmp_path / "db.sqlite"
    db = migrated(db_path)
    store = EmbeddingStore(EmbeddingRepository(db), Limits(max_dim=64, max_rows=10_000))
    return db_path, store


def _fill(store: EmbeddingStore, n: int, seed: int = 5) -> tuple[np.ndarray, list]:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    metadata = [_metadata(i) for i in range(n)]
    store.upsert_array(MODEL, ETYPE, [f"e{i}" for i in range(n)], vectors, metadata=metadata)
    return vectors, metadata


def _process(db_path: Path, tmp: Path, service=None, container: str = "", compress_from=100):
    repo = CountingRepo(open_database(f"sqlite:///{db_path}"))
    store = None if service is None else snap.SnapshotStore(service, container)
    cache = IndexCache(
        repo,
        rows_dir=tmp / "rows",
        compress_from=compress_from,
        snapshots=store,
        settle_seconds=0,
    )
    return repo, cache, SearchService(cache, max_dim=64, max_queries=16, pool=BufferPool())


def _check(search: SearchService, vectors: np.ndarray, metadata: list) -> None:
    """Filtered searches through the service equal the brute force over matching rows,
    and the hits carry each row's metadata."""
    queries = np.random.default_rng(1).standard_normal((3, DIM)).astype(np.float32)
    for spec in ({"kind": "odd", "rank": {"$lt": 150}}, {"tags": {"$in": ["t1"]}}):
        where = parse_filter(spec)
        idx = np.array([i for i, md in enumerate(metadata) if where.matches(md)])
        for metric in METRICS:
            found = search.search(
                queries, top_k=6, metric=metric, model_id=MODEL, where=where, include_metadata=True
            )
            for q, hits in zip(queries, found, strict=True):
                want = idx[reference(vectors[idx], q, 6, metric)]
                assert [h.entity_id for h in hits] == [f"e{i}" for i in want]
                assert [h.metadata for h in hits] == [metadata[i] for i in want]


def test_metadata_is_stored_replaced_and_updated_with_the_row(stack) -> None:
    _db_path, store = stack
    vectors, metadata = _fill(store, 10)
    (row,) = store.get("e1", MODEL, ETYPE)
    assert row.metadata == metadata[1]
    assert store.get("e4", MODEL, ETYPE)[0].metadata is None
    # A write without metadata replaces the whole row: it keeps none.
    store.upsert_array(MODEL, ETYPE, ["e1"], vectors[1:2])
    assert store.get("e1", MODEL, ETYPE)[0].metadata is None
    # The metadata alone, vector untouched; the set's version moves.
    repo = SetRepository(store.repo.db)
    before = repo.set_version(MODEL, ETYPE)
    assert store.set_metadata("e1", MODEL, ETYPE, {"kind": "new"}) == {"kind": "new"}
    (row,) = store.get("e1", MODEL, ETYPE)
    assert row.metadata == {"kind": "new"}
    assert np.frombuffer(row.vector, "<f4").tolist() == vectors[1].tolist()
    assert repo.set_version(MODEL, ETYPE) == (before or 0) + 1
    with pytest.raises(NotFoundError):
        store.set_metadata("nobody", MODEL, ETYPE, {"kind": "x"})
    assert store.set_metadata("e1", MODEL, ETYPE, None) is None
    assert store.get("e1", MODEL, ETYPE)[0].metadata is None
    loaded = repo.load_rows(MODEL, ETYPE)
    assert loaded.ids == [f"e{i}" for i in range(10)]
    assert json.loads(loaded.metadata[2]) == metadata[2] and loaded.metadata[4] is None


def test_bad_metadata_is_refused_before_any_row_is_written(stack) -> None:
    _db_path, store = stack
    with pytest.raises(InvalidInputError) as err:
        store.upsert(
            MODEL,
            ETYPE,
            [("a", [1.0] * DIM), ("b", [2.0] * DIM)],
            [{"ok": 1}, {"bad": {"nested": 1}}],
        )
    assert (err.value.field or "").startswith("items[1].metadata")
    with pytest.raises(NotFoundError):
        store.get("a", MODEL, ETYPE)


@pytest.mark.parametrize("compress_from", [100, 10_000])
def test_loaded_sets_filter_and_reload_when_metadata_changes(stack, tmp_path, compress_from):
    db_path, store = stack
    vectors, metadata = _fill(store, 400)
    _repo, cache, search = _process(db_path, tmp_path, compress_from=compress_from)
    _check(search, vectors, metadata)
    loaded = cache._sets[(MODEL, ETYPE)]
    assert (loaded.compressed is not None) == (compress_from == 100)
    assert loaded.metadata is not None and loaded.nbytes > loaded.metadata.nbytes
    # Metadata updated alone: the next search sees it (the set's version moved).
    store.set_metadata("e1", MODEL, ETYPE, {"kind": "even", "rank": 1})
    metadata[1] = {"kind": "even", "rank": 1}
    _check(search, vectors, metadata)
    assert cache._sets[(MODEL, ETYPE)].version == loaded.version + 1


def test_a_set_without_metadata_matches_only_filters_that_need_none(stack, tmp_path) -> None:
    db_path, store = stack
    vectors = np.random.default_rng(2).standard_normal((30, DIM)).astype(np.float32)
    store.upsert_array(MODEL, ETYPE, [f"e{i}" for i in range(30)], vectors)
    _repo, cache, search = _process(db_path, tmp_path)
    q = vectors[:1]
    hits = search.search(q, top_k=5, metric="dot", model_id=MODEL, where=parse_filter({"a": 1}))
    assert hits == [[]]
    where = parse_filter({"a": {"$exists": False}})
    hits = search.search(q, top_k=5, metric="dot", model_id=MODEL, where=where)
    assert [h.entity_id for h in hits[0]] == [f"e{i}" for i in reference(vectors, q[0], 5, "dot")]


@pytest.fixture
def storage(storage_connection: str):
    service = BlobServiceClient.from_connection_string(storage_connection)
    return service, f"snap-{uuid.uuid4().hex[:20]}"


def test_snapshots_carry_metadata(stack, tmp_path, storage) -> None:
    db_path, store = stack
    service, container = storage
    vectors, metadata = _fill(store, 300)
    repo1, cache1, search1 = _process(db_path, tmp_path / "p1", service, container)
    _check(search1, vectors, metadata)
    cache1.wait_for_snapshots()
    assert repo1.row_reads == 1 and cache1.snapshot_writes == 1
    repo2, cache2, search2 = _process(db_path, tmp_path / "p2", service, container)
    _check(search2, vectors, metadata)
    assert repo2.row_reads == 0 and cache2.snapshot_loads == 1


def test_a_snapshot_of_the_older_format_is_stale_and_rewritten(stack, tmp_path, storage) -> None:
    db_path, store = stack
    service, container = storage
    vectors, metadata = _fill(store, 300)
    _repo, cache1, search1 = _process(db_path, tmp_path / "p1", service, container)
    _check(search1, vectors, metadata)
    cache1.wait_for_snapshots()
    blob = service.get_blob_client(container, snap.blob_name(MODEL, ETYPE))
    data = blob.download_blob().readall()
    current = f'"format":{snapshot_format.FORMAT}'.encode()
    assert snapshot_format.FORMAT >= 2 and data.count(current) == 1
    blob.upload_blob(data.replace(current, b'"format":1'), overwrite=True)  # same length

    repo2, cache2, search2 = _process(db_path, tmp_path / "p2", service, container)
    _check(search2, vectors, metadata)
    assert repo2.row_reads == 1 and cache2.snapshot_loads == 0  # stale: read from SQL
    cache2.wait_for_snapshots()
    assert cache2.snapshot_writes == 1
    head = snapshot_format.decode_head(blob.download_blob().readall())
    assert head is not None and head["format"] == snapshot_format.FORMAT
    repo3, cache3, search3 = _process(db_path, tmp_path / "p3", service, container)
    _check(search3, vectors, metadata)
    assert repo3.row_reads == 0 and cache3.snapshot_loads == 1


@pytest.mark.parametrize("compress_from", [1, 10**9], ids=["compressed", "float32"])
def test_concurrent_filtered_queries_batch_only_with_equal_filters(
    stack, tmp_path, compress_from
) -> None:
    """Eight callers at once, two filters (one written in two key orders): each batch of
    four holds one filter, and every caller gets what it gets alone."""
    db_path, store = stack
    vectors, _metadata_rows = _fill(store, 300)
    db = open_database(f"sqlite:///{db_path}")
    batched = SearchService(
        IndexCache(SetRepository(db), compress_from=compress_from, rows_dir=tmp_path / "b"),
        max_dim=64,
        max_queries=16,
        batching=BatchLimits(max_size=4, max_delay_ms=5000, max_queue=64),
    )
    _repo, _cache, alone = _process(db_path, tmp_path / "a", compress_from=compress_from)
    specs = [
        {"kind": "odd", "rank": {"$lt": 200}},
        {"rank": {"$lt": 200}, "kind": "odd"},
        {"tags": "t2"},
        {"tags": "t2"},
    ] * 2
    queries = np.random.default_rng(8).standard_normal((8, DIM)).astype(np.float32)

    def one(i: int):
        where = parse_filter(specs[i])
        return batched.search_one(
            queries[i], top_k=4 + i, metric="cosine", model_id=MODEL, where=where
        )

    got = together(8, one)
    for i, hits in enumerate(got):
        where = parse_filter(specs[i])
        want = alone.search(
            queries[i : i + 1], top_k=4 + i, metric="cosine", model_id=MODEL, where=where
        )[0]
        assert hits == want and len(hits) == 4 + i, i
