"""Compressed sets through the index cache, and their snapshots in Blob Storage, on real
SQLite and Azurite: a fresh snapshot is used (no SQL row read), a missing, stale or
corrupt one falls back to SQL with the right results."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from azure.storage.blob import BlobServiceClient

from devhost.azurite import connection_string, free_port
from shared.db.connection import open_database
from shared.embeddings.repository import EmbeddingRepository
from shared.embeddings.service import EmbeddingStore, Limits
from shared.errors import NotFoundError
from shared.search import snapshot_format
from shared.search import snapshots as snap
from shared.search.cache import IndexCache
from shared.search.loaded import SnapshotRowsError
from shared.search.repository import SetRepository
from shared.search.service import SearchService
from shared.vectors.pool import BufferPool
from tests.search.reference import reference
from tests.support.db import migrated
from tests.support.proxy import CuttableProxy

MODEL, ETYPE = "m-compressed", "t"
#: Far above the fail-fast snapshot read (about 10 s), far below the SDK's defaults.
SNAPSHOT_DEADLINE = 90


class CountingRepo(SetRepository):
    """The real repository, counting full set reads (the SQL row reads a snapshot saves)."""

    row_reads = 0

    def load_rows(self, model_id: str, embedding_type: str):
        self.row_reads += 1
        return super().load_rows(model_id, embedding_type)


def _process(db_path: Path, tmp: Path, service: BlobServiceClient | None, container: str):
    """What one worker process builds: its own cache over the shared SQLite file."""
    repo = CountingRepo(open_database(f"sqlite:///{db_path}"))
    store = _snapshots(service, container)
    cache = IndexCache(
        repo, rows_dir=tmp / "rows", compress_from=100, snapshots=store, settle_seconds=0
    )
    search = SearchService(cache, max_dim=64, max_queries=16, pool=BufferPool())
    return repo, cache, search


def _snapshots(service: BlobServiceClient | None, container: str) -> snap.SnapshotStore | None:
    return None if service is None else snap.SnapshotStore(service, container)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


@pytest.fixture
def stack(tmp_path: Path, storage_connection: str):
    db_path = tmp_path / "db.sqlite"
    db = migrated(db_path)
    store = EmbeddingStore(EmbeddingRepository(db), Limits(max_dim=64, max_rows=10_000))
    service = BlobServiceClient.from_connection_string(storage_connection)
    container = f"snap-{uuid.uuid4().hex[:20]}"
    return db_path, store, service, container


def _fill(store: EmbeddingStore, rng: np.random.Generator, n: int = 600) -> np.ndarray:
    vectors = rng.standard_normal((n, 24)).astype(np.float32)
    store.upsert_array(MODEL, ETYPE, [f"e{i}" for i in range(n)], vectors)
    return vectors


def _check(search: SearchService, vectors: np.ndarray, rng: np.random.Generator) -> None:
    queries = rng.standard_normal((3, 24)).astype(np.float32)
    for metric in ("cosine", "euclidean", "dot"):
        batch = search.search(queries, top_k=7, metric=metric, model_id=MODEL)
        for q, hits in zip(queries, batch, strict=True):
            want = [f"e{i}" for i in reference(vectors, q, 7, metric)]
            single = search.search(q[None], top_k=7, metric=metric, model_id=MODEL)[0]
            assert [h.entity_id for h in single] == want
            assert [h.entity_id for h in hits] == want


def _snapshot(stack, tmp_path: Path, rng: np.random.Generator) -> np.ndarray:
    """Fill the set and let a first process load it from SQL and snapshot it."""
    db_path, store, service, container = stack
    vectors = _fill(store, rng)
    repo, cache, search = _process(db_path, tmp_path / "p1", service, container)
    _check(search, vectors, rng)
    cache.wait_for_snapshots()
    assert repo.row_reads == 1 and cache.snapshot_writes == 1
    loaded = cache._sets[(MODEL, ETYPE)]
    assert loaded.compressed is not None and loaded.base is None
    assert not list((tmp_path / "p1" / "rows").iterdir())  # mapped, and unlinked
    return vectors


def test_a_fresh_snapshot_is_used_without_reading_rows_from_sql(stack, tmp_path, rng) -> None:
    vectors = _snapshot(stack, tmp_path, rng)
    db_path, _, service, container = stack
    names = [b.name for b in service.get_container_client(container).list_blobs()]
    assert names == [snap.blob_name(MODEL, ETYPE)]
    repo, cache, search = _process(db_path, tmp_path / "p2", service, container)
    _check(search, vectors, rng)
    assert repo.row_reads == 0 and cache.snapshot_loads == 1 and cache.loads == 0


def test_a_stale_snapshot_falls_back_to_sql(stack, tmp_path, rng) -> None:
    vectors = _snapshot(stack, tmp_path, rng)
    db_path, store, service, container = stack
    vectors[5] = rng.standard_normal(24).astype(np.float32) * 10
    store.upsert_array(MODEL, ETYPE, ["e5"], vectors[5:6])  # the version moves on
    repo, cache, search = _process(db_path, tmp_path / "p2", service, container)
    _check(search, vectors, rng)
    assert repo.row_reads == 1 and cache.snapshot_loads == 0
    cache.wait_for_snapshots()  # and the new version is snapshotted in turn
    repo3, cache3, search3 = _process(db_path, tmp_path / "p3", service, container)
    _check(search3, vectors, rng)
    assert repo3.row_reads == 0 and cache3.snapshot_loads == 1


def test_a_missing_snapshot_falls_back_to_sql(stack, tmp_path, rng) -> None:
    db_path, store, service, container = stack
    vectors = _fill(store, rng)
    repo, cache, search = _process(db_path, tmp_path / "p1", service, container)
    cache.settle_seconds = 3600  # no snapshot gets written in this test
    _check(search, vectors, rng)
    assert repo.row_reads == 1 and cache.snapshot_loads == 0


@pytest.mark.parametrize("damage", ["codes", "rows", "header", "truncated"])
def test_a_corrupt_snapshot_falls_back_to_sql(stack, tmp_path, rng, damage: str) -> None:
    vectors = _snapshot(stack, tmp_path, rng)
    db_path, _, service, container = stack
    blob = service.get_blob_client(container, snap.blob_name(MODEL, ETYPE))
    data = bytearray(blob.download_blob().readall())
    header = snapshot_format.decode_head(bytes(data))
    assert header is not None
    if damage == "truncated":
        data = data[: len(data) - 100]
    elif damage == "header":
        data[:8] = b"XXXXXXXX"
    else:
        at = header["members"][damage]["offset"] + 10
        data[at] ^= 0xFF
    blob.upload_blob(bytes(data), overwrite=True)
    repo, cache, search = _process(db_path, tmp_path / "p2", service, container)
    _check(search, vectors, rng)
    assert repo.row_reads == 1 and cache.snapshot_loads == 0


def test_small_sets_stay_float32(stack, tmp_path, rng) -> None:
    db_path, store, _, _ = stack
    vectors = _fill(store, rng, n=50)  # under compress_from (100)
    repo, cache, search = _process(db_path, tmp_path / "p1", None, "unused")
    _check(search, vectors, rng)
    loaded = cache._sets[(MODEL, ETYPE)]
    assert loaded.compressed is None and loaded.base is not None


def _hold_rows(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[snap.RemoteRows]]:
    """Rows downloads wait for the returned event: searches must gather by range. The
    list gets each download that starts."""
    release = threading.Event()
    started: list[snap.RemoteRows] = []
    fetch_all = snap.RemoteRows._fetch_all

    def held(self, rows_dir):
        started.append(self)
        release.wait(30)
        fetch_all(self, rows_dir)

    monkeypatch.setattr(snap.RemoteRows, "_fetch_all", held)
    return release, started


def test_a_large_snapshot_answers_before_its_rows_arrive(stack, tmp_path, rng, monkeypatch) -> None:
    vectors = _snapshot(stack, tmp_path, rng)
    db_path, _, service, container = stack
    release, _ = _hold_rows(monkeypatch)
    repo, cache, search = _process(db_path, tmp_path / "p2", service, container)
    cache.snapshots.lazy_rows_from = 0  # this small set counts as large
    _check(search, vectors, rng)  # answered from rows read by range
    rows = cache._sets[(MODEL, ETYPE)].compressed.rows
    assert isinstance(rows, snap.RemoteRows) and rows.array() is None
    release.set()
    assert rows.array(wait=True) is not None
    _check(search, vectors, rng)  # and from the mapped file once it is complete
    assert repo.row_reads == 0 and cache.snapshot_loads == 1


def test_a_damaged_row_read_by_range_falls_back_to_sql(stack, tmp_path, rng, monkeypatch) -> None:
    vectors = _snapshot(stack, tmp_path, rng)
    db_path, _, service, container = stack
    blob = service.get_blob_client(container, snap.blob_name(MODEL, ETYPE))
    data = bytearray(blob.download_blob().readall())
    header = snapshot_format.decode_head(bytes(data))
    at = header["members"]["rows"]["offset"] + 42 * 24 * 4 + 8  # row 42, third value
    data[at : at + 4] = np.float32(vectors[42, 2] + 0.5).tobytes()
    blob.upload_blob(bytes(data), overwrite=True)
    release, started = _hold_rows(monkeypatch)
    repo, cache, search = _process(db_path, tmp_path / "p2", service, container)
    cache.snapshots.lazy_rows_from = 0
    hits = search.search(vectors[42:43], top_k=3, metric="euclidean", model_id=MODEL)[0]
    assert hits[0].entity_id == "e42" and hits[0].distance == 0.0
    assert repo.row_reads == 1  # the damaged row was caught and SQL answered
    _check(search, vectors, rng)
    assert repo.row_reads == 1
    assert cache._sets[(MODEL, ETYPE)].compressed.rows is not None
    cache.wait_for_snapshots()
    assert cache.snapshot_writes == 1  # the damaged snapshot is written again from SQL
    (download,) = started
    release.set()  # finished while this test's Azurite answers
    with pytest.raises(SnapshotRowsError):  # the blob its header came from is gone
        download.array(wait=True)


def test_a_snapshot_rewritten_while_its_rows_arrive_is_not_read_and_sql_answers(
    stack, tmp_path, rng, monkeypatch
) -> None:
    """Rows are read only from the blob whose header was decoded: another instance's
    rewrite (here the same bytes, so only the etag tells) refuses every later read, and
    the set loads from SQL instead of mixing two snapshots."""
    vectors = _snapshot(stack, tmp_path, rng)
    db_path, _, service, container = stack
    blob = service.get_blob_client(container, snap.blob_name(MODEL, ETYPE))
    release, started = _hold_rows(monkeypatch)
    repo, cache, search = _process(db_path, tmp_path / "p2", service, container)
    cache.snapshots.lazy_rows_from = 0
    cache.settle_seconds = 3600  # no snapshot write of its own in this test
    hits = search.search(vectors[3:4], top_k=3, metric="dot", model_id=MODEL)[0]
    assert repo.row_reads == 0 and cache.snapshot_loads == 1  # rows read by range
    blob.upload_blob(blob.download_blob().readall(), overwrite=True)
    again = search.search(vectors[3:4], top_k=3, metric="dot", model_id=MODEL)[0]
    assert repo.row_reads == 1  # refused by storage, answered from SQL
    assert [h.entity_id for h in again] == [h.entity_id for h in hits]
    _check(search, vectors, rng)
    (download,) = started
    release.set()
    with pytest.raises(SnapshotRowsError):
        download.array(wait=True)


def test_storage_gone_while_rows_arrive_leaves_sql_to_answer(
    stack, tmp_path, rng, monkeypatch, azurite
) -> None:
    vectors = _snapshot(stack, tmp_path, rng)
    db_path, _, _, container = stack
    proxy = CuttableProxy(azurite.blob_port)
    release, _ = _hold_rows(monkeypatch)
    try:
        port = proxy.port
        service = BlobServiceClient.from_connection_string(
            connection_string(port, azurite.queue_port, azurite.table_port)
        )
        repo, cache, search = _process(db_path, tmp_path / "p2", service, container)
        cache.snapshots.lazy_rows_from = 0
        cache.settle_seconds = 3600
        search.search(vectors[:1], top_k=3, metric="dot", model_id=MODEL)
        assert repo.row_reads == 0 and cache.snapshot_loads == 1
        proxy.cut()
        _check(search, vectors, rng)
        assert repo.row_reads == 1
    finally:
        release.set()
        proxy.close()


def _snapshot_names(service: BlobServiceClient, container: str) -> list[str]:
    return [b.name for b in service.get_container_client(container).list_blobs()]


def test_deleting_rows_removes_the_snapshot_that_holds_them(stack, tmp_path, rng) -> None:
    """A deleted vector must not survive in a snapshot: the delete removes it, the next
    load reads SQL (without the row) and snapshots the set again."""
    vectors = _snapshot(stack, tmp_path, rng)
    db_path, _, service, container = stack
    store = EmbeddingStore(
        EmbeddingRepository(open_database(f"sqlite:///{db_path}")),
        Limits(max_dim=64, max_rows=10_000),
        forget_snapshot=snap.SnapshotStore(service, container).forget,
    )
    assert _snapshot_names(service, container) == [snap.blob_name(MODEL, ETYPE)]
    assert store.delete("e5", MODEL, ETYPE) == 1
    assert _snapshot_names(service, container) == []
    with pytest.raises(NotFoundError):  # nothing deleted: nothing to forget
        store.delete("e5", MODEL, ETYPE)
    repo, cache, search = _process(db_path, tmp_path / "p2", service, container)
    hits = search.search(vectors[5:6], top_k=3, metric="euclidean", model_id=MODEL)[0]
    assert "e5" not in [h.entity_id for h in hits]
    assert repo.row_reads == 1 and cache.snapshot_loads == 0
    cache.wait_for_snapshots()
    assert _snapshot_names(service, container) == [snap.blob_name(MODEL, ETYPE)]


def test_a_snapshot_that_cannot_be_removed_does_not_fail_the_delete(stack, rng) -> None:
    """Storage unreachable (nothing listens on the port): SQL, the truth, has deleted the
    row; the stale snapshot goes when the set next loads."""
    _, store, service, _ = stack
    _fill(store, rng, n=10)
    nowhere = BlobServiceClient("http://127.0.0.1:9/devstoreaccount1", credential=None)
    store.forget_snapshot = snap.SnapshotStore(nowhere, "snapshots").forget
    assert store.delete("e1", MODEL, ETYPE) == 1
    with pytest.raises(NotFoundError):
        store.get("e1", MODEL, ETYPE)


def test_a_stale_snapshot_is_deleted_when_found(stack, tmp_path, rng) -> None:
    vectors = _snapshot(stack, tmp_path, rng)
    db_path, store, service, container = stack
    store.upsert_array(MODEL, ETYPE, ["e5"], vectors[6:7])  # the version moves on
    repo, cache, search = _process(db_path, tmp_path / "p2", service, container)
    cache.settle_seconds = 3600  # no new snapshot in this test
    search.search(vectors[:1], top_k=3, metric="dot", model_id=MODEL)
    assert repo.row_reads == 1 and _snapshot_names(service, container) == []


def _unanswering_snapshots(container: str, *, reset: bool) -> tuple[CuttableProxy, Any]:
    """A snapshot store on an account that accepts connections and never answers
    (`reset`: resets each one at once, so a client that connects fails fast)."""
    proxy = CuttableProxy(free_port())
    if reset:
        proxy.cut()
    else:
        proxy.stall()
    port = proxy.port
    service = BlobServiceClient.from_connection_string(connection_string(port, port, port))
    return proxy, snap.SnapshotStore(service, container)


def test_a_set_too_small_to_compress_never_asks_storage_for_a_snapshot(stack, tmp_path, rng):
    """Only compressed sets are snapshotted: loading a smaller one must not wait on
    storage (an unanswering account held a 1-row search for 5 minutes)."""
    db_path, store, _, container = stack
    vectors = _fill(store, rng, n=50)  # under compress_from (100)
    proxy, snapshots = _unanswering_snapshots(container, reset=True)
    try:
        repo, cache, search = _process(db_path, tmp_path / "p1", None, container)
        cache.snapshots = snapshots
        _check(search, vectors, rng)
        assert proxy.connections == 0
        assert (cache.loads, cache.snapshot_loads) == (1, 0)
    finally:
        proxy.close()


def test_a_snapshot_storage_does_not_answer_falls_back_to_sql_in_bounded_time(
    stack, tmp_path, rng
) -> None:
    """The snapshot read gives up within seconds (SDK defaults: 60 s reads, 3 retries
    15 s+ apart, about 5 minutes) and the search answers from SQL."""
    db_path, store, _, container = stack
    vectors = _fill(store, rng)  # 600 rows: compressed, so a snapshot is looked for
    proxy, snapshots = _unanswering_snapshots(container, reset=False)
    try:
        repo, cache, search = _process(db_path, tmp_path / "p1", None, container)
        cache.snapshots = snapshots
        cache.settle_seconds = 3600  # no snapshot write in the background
        done = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            try:
                _check(search, vectors, rng)
            except BaseException as exc:
                failed.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, daemon=True).start()
        assert done.wait(SNAPSHOT_DEADLINE), "the search still waits on storage"
        assert not failed, failed
        assert proxy.connections >= 1  # it did look, and gave up
        assert (cache.loads, cache.snapshot_loads) == (1, 0)
    finally:
        proxy.close()
