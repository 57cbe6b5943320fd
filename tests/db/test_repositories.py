"""Repositories on both SQLite paths (sqlite3 and pyodbc)."""

from __future__ import annotations

import struct

import pytest

from shared.embeddings.repository import EmbeddingDimensionError, EmbeddingRepository
from shared.inference.repository import InferenceLogRepository, InferenceRecord
from shared.jobs.repository import JobRepository
from shared.registry.repository import ModelRepository, TensorStats
from shared.search.repository import SetRepository
from tests.support.db import BOTH_DRIVERS

#: Each test runs on both SQLite paths (sqlite3 and pyodbc).
pytestmark = BOTH_DRIVERS


def f32(*xs: float) -> bytes:
    return struct.pack(f"<{len(xs)}f", *xs)


# -- models ------------------------------------------------------------------------------
def _register(repo: ModelRepository, name: str = "iris", sha: str = "a" * 64):
    return repo.register(
        name,
        sha256=sha,
        size_bytes=1234,
        blob_uri=f"http://blob/models/{name}.onnx",
        blob_name=f"{name}.onnx",
        content_type="application/octet-stream",
        metadata={"source": "test"},
    )


def test_model_register_then_same_bytes_is_not_a_duplicate(db) -> None:
    repo = ModelRepository(db)
    first, created = _register(repo)
    again, created_again = _register(repo)
    assert created and not created_again
    assert again.id == first.id and again.version == 1
    assert first.status == "registered" and first.metadata == {"source": "test"}
    assert first.size_bytes == 1234 and first.created_at.endswith("Z")


def test_new_bytes_under_same_name_make_a_new_version(db) -> None:
    repo = ModelRepository(db)
    v1, _ = _register(repo, sha="a" * 64)
    v2, created = _register(repo, sha="b" * 64)
    assert created and v2.version == 2 and v2.id != v1.id
    assert repo.latest("iris").id == v2.id
    assert repo.get_version("iris", 1).id == v1.id
    assert repo.latest("iris", ready_only=True) is None
    repo.set_status(v1.id, "ready")
    assert repo.latest("iris", ready_only=True).id == v1.id


def test_model_status_error_and_listing(db) -> None:
    repo = ModelRepository(db)
    m, _ = _register(repo)
    assert repo.set_status(m.id, "failed", error="not an ONNX file")
    got = repo.get(m.id)
    assert (got.status, got.error) == ("failed", "not an ONNX file")
    assert [x.id for x in repo.list(status="failed")] == [m.id]
    assert repo.list(status="ready") == []
    with pytest.raises(ValueError, match="status must be one of"):
        repo.set_status(m.id, "bogus")


def test_tensor_stats_replace_and_cascade_on_model_delete(db) -> None:
    repo = ModelRepository(db)
    m, _ = _register(repo)
    stats = [
        TensorStats("w", "float32", [4, "batch"], 4, -1.0, 2.0, 0.5, 1.1),
        TensorStats("b", "float32", [4], 4, 0.0, 0.0, 0.0, 0.0),
    ]
    repo.replace_tensors(m.id, stats)
    repo.replace_tensors(m.id, stats)  # replay is idempotent
    got = repo.tensors(m.id)
    assert [t.name for t in got] == ["b", "w"]
    assert got[1].shape == [4, "batch"] and got[1].max_value == 2.0
    assert repo.delete(m.id)
    assert repo.tensors(m.id) == []


# -- jobs --------------------------------------------------------------------------------
def test_job_create_is_idempotent_by_id(db) -> None:
    jobs = JobRepository(db)
    job, created = jobs.create("job-1", "model", {"version_id": "m"})
    again, created_again = jobs.create("job-1", "model", {"version_id": "other"})
    assert created and not created_again
    assert again.payload == {"version_id": "m"} and again.status == "queued"


def test_job_lifecycle_counts_attempts_and_records_errors(db) -> None:
    jobs = JobRepository(db)
    jobs.create("job-2", "embeddings", {"n": 3})
    assert jobs.claim("job-2", "msg-a") and jobs.get("job-2").attempts == 1
    assert not jobs.claim("job-2", "msg-b")  # running for another message
    assert jobs.claim("job-2", "msg-a")  # its own redelivery takes it over
    assert jobs.get("job-2").attempts == 2
    jobs.fail("job-2", "blob not found")
    failed = jobs.get("job-2")
    assert (failed.status, failed.error) == ("failed", "blob not found")
    assert failed.finished_at is not None
    assert jobs.requeue("job-2")
    assert not jobs.requeue("job-2")  # only failed jobs go back
    assert jobs.claim("job-2", "msg-b")
    running = jobs.get("job-2")
    assert running.attempts == 3 and running.error is None
    jobs.succeed("job-2", {"rows": 3})
    done = jobs.get("job-2")
    assert (done.status, done.result) == ("succeeded", {"rows": 3})
    assert not jobs.claim("job-2", "msg-b")  # a finished job is not restarted
    assert jobs.get("job-2").attempts == 3
    assert [j.id for j in jobs.list(status="succeeded", kind="embeddings")] == ["job-2"]
    assert jobs.list(kind="model") == []


# -- embeddings --------------------------------------------------------------------------
def test_embedding_upsert_get_and_counts(db) -> None:
    repo = EmbeddingRepository(db)
    counts = repo.upsert_many("m", "text", [("e1", f32(1, 0)), ("e2", f32(0, 1))])
    assert (counts.inserted, counts.updated) == (2, 0)
    counts = repo.upsert_many("m", "text", [("e1", f32(2, 2)), ("e3", f32(3, 3))])
    assert (counts.inserted, counts.updated) == (1, 1)
    rows = repo.get("e1")
    assert len(rows) == 1 and rows[0].vector == f32(2, 2) and rows[0].dimension == 2


def test_embedding_dimension_is_fixed_per_set(db) -> None:
    repo = EmbeddingRepository(db)
    repo.upsert_many("m", "text", [("e1", f32(1, 0))])
    with pytest.raises(EmbeddingDimensionError, match="stores 2-dimensional vectors; got 3"):
        repo.upsert_many("m", "text", [("e2", f32(1, 0, 0))])
    # Another type under the same model may have its own dimension.
    repo.upsert_many("m", "image", [("e2", f32(1, 0, 0))])
    assert {(s.embedding_type, s.dimension, s.count) for s in SetRepository(repo.db).sets("m")} == {
        ("text", 2, 1),
        ("image", 3, 1),
    }


def test_every_write_bumps_the_set_version(db) -> None:
    repo = EmbeddingRepository(db)
    assert SetRepository(repo.db).set_version("m", "text") is None
    repo.upsert_many("m", "text", [("e1", f32(1, 0))])
    v1 = SetRepository(repo.db).set_version("m", "text")
    repo.upsert_many("m", "text", [("e1", f32(0, 1))])
    v2 = SetRepository(repo.db).set_version("m", "text")
    assert repo.delete("e1", model_id="m") == 1
    v3 = SetRepository(repo.db).set_version("m", "text")
    assert v1 < v2 < v3


def test_load_set_returns_ids_in_insert_order_with_matching_bytes(db) -> None:
    repo = EmbeddingRepository(db)
    repo.upsert_many("m", "text", [("a", f32(1, 2)), ("b", f32(3, 4)), ("c", f32(5, 6))])
    version, ids, blob, dim = SetRepository(repo.db).load_set("m", "text")
    assert ids == ["a", "b", "c"] and dim == 2
    assert blob == f32(1, 2, 3, 4, 5, 6)
    assert version == SetRepository(repo.db).set_version("m", "text")
    assert SetRepository(repo.db).load_set("none", "text") == (0, [], b"", 0)


def test_delete_with_filters_only_touches_matching_rows(db) -> None:
    repo = EmbeddingRepository(db)
    repo.upsert_many("m1", "text", [("e", f32(1))])
    repo.upsert_many("m2", "text", [("e", f32(2))])
    assert repo.delete("e", model_id="m1") == 1
    assert [r.model_id for r in repo.get("e")] == ["m2"]
    assert repo.delete("e") == 1
    assert repo.get("e") == []


# -- inference log -----------------------------------------------------------------------
def test_inference_log_rows_and_summary(db) -> None:
    log = InferenceLogRepository(db)
    log.add(InferenceRecord("iris", 1, 2.5, 4, "succeeded", confidence=0.9))
    log.add(InferenceRecord("iris", 1, 7.5, 1, "failed", error="bad input"))
    log.add(InferenceRecord("other", 1, 1.0, 1, "succeeded"))
    summary = log.summary("iris")
    assert summary["calls"] == 2 and summary["rows"] == 5 and summary["failures"] == 1
    assert summary["mean_latency_ms"] == pytest.approx(5.0)
    assert summary["max_latency_ms"] == pytest.approx(7.5)
    recent = log.recent("iris")
    assert len(recent) == 2 and {r.outcome for r in recent} == {"succeeded", "failed"}
