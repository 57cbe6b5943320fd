"""The job runner on real SQLite and Azurite: statuses, retries, idempotency."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from shared.embeddings.ingestion import EmbeddingsIngestion, TextEmbeddingJob
from shared.embeddings.shapes import EmbedTextPayload
from shared.inference.embedder import TextEmbedder
from shared.jobs.messages import JobMessage
from shared.jobs.runner import JobRunner, PermanentJobError
from shared.search.repository import SetRepository
from tests.support.text_exports import write_export, write_tokenizer


def _msg(job_id: str, kind: str, payload: dict) -> str:
    return JobMessage(job_id=job_id, kind=kind, payload=payload).to_json()


def _runner(repos, store, container) -> JobRunner:
    jobs = repos[0]
    return JobRunner(jobs, {"embeddings": EmbeddingsIngestion(store, container, 10**6)})


def test_inline_embeddings_job_succeeds_and_replay_is_a_no_op(repos, store, container) -> None:
    runner = _runner(repos, store, container)
    body = _msg(
        "emb-1",
        "embeddings",
        {
            "model_id": "m",
            "items": [{"entity_id": "a", "vector": [1, 0]}, {"entity_id": "b", "vector": [0, 1]}],
        },
    )
    assert runner.run(body).status == "succeeded"
    job = repos[0].get("emb-1")
    assert job.status == "succeeded" and job.attempts == 1
    assert job.result == {"rows": 2, "inserted": 2, "updated": 0}
    assert runner.run(body).status == "skipped"  # at-least-once delivery: no second run
    assert repos[0].get("emb-1").attempts == 1
    assert {r.entity_id for r in [*repos[2].get("a"), *repos[2].get("b")]} == {"a", "b"}


def test_npy_batch_from_the_ingest_container(repos, store, container) -> None:
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((12_000, 8)).astype(np.float32)
    ids = [f"e{i}" for i in range(len(matrix))]
    buf = io.BytesIO()
    np.save(buf, matrix)
    buf.seek(0)
    container.upload("batch-1.npy", buf)
    container.upload("batch-1.json", io.BytesIO(json.dumps(ids).encode()))
    runner = _runner(repos, store, container)
    out = runner.run(_msg("npy-1", "embeddings", {"model_id": "m", "blob": "batch-1.npy"}))
    assert out.status == "succeeded", out.detail
    assert repos[0].get("npy-1").result["rows"] == 12_000
    _, got_ids, blob, dim = SetRepository(repos[2].db).load_set("m", "default")
    assert got_ids == ids and dim == 8
    assert np.array_equal(np.frombuffer(blob, dtype="<f4").reshape(-1, 8), matrix)


def test_jsonl_batch_and_a_bad_line_fails_with_its_line_number(repos, store, container) -> None:
    lines = [json.dumps({"entity_id": f"t{i}", "vector": [i, 1.0]}) for i in range(10)]
    container.upload("ok.jsonl", io.BytesIO("\n".join(lines).encode()))
    runner = _runner(repos, store, container)
    assert (
        runner.run(_msg("jl-1", "embeddings", {"model_id": "j", "blob": "ok.jsonl"})).status
        == "succeeded"
    )
    assert repos[0].get("jl-1").result["rows"] == 10
    container.upload("bad.jsonl", io.BytesIO((lines[0] + "\n{oops\n").encode()))
    out = runner.run(_msg("jl-2", "embeddings", {"model_id": "j", "blob": "bad.jsonl"}))
    assert out.status == "failed"
    assert "bad.jsonl line 2" in repos[0].get("jl-2").error


def test_npy_row_count_must_match_ids(repos, store, container) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ones((3, 4), np.float32))
    buf.seek(0)
    container.upload("short.npy", buf)
    container.upload("short.json", io.BytesIO(b'["a", "b"]'))
    out = _runner(repos, store, container).run(
        _msg("npy-2", "embeddings", {"model_id": "m", "blob": "short.npy"})
    )
    assert out.status == "failed" and "3 rows but short.json has 2 ids" in out.detail


def test_a_missing_blob_is_a_permanent_failure(repos, store, container) -> None:
    out = _runner(repos, store, container).run(
        _msg("gone-1", "embeddings", {"model_id": "m", "blob": "nothing.jsonl"})
    )
    assert out.status == "failed" and "blob not found" in repos[0].get("gone-1").error


def test_malformed_message_is_recorded_failed_not_raised(repos, store, container) -> None:
    runner = _runner(repos, store, container)
    out = runner.run("{not json", message_id="q-123")
    assert out.status == "failed" and out.job_id == "malformed-q-123"
    job = repos[0].get("malformed-q-123")
    assert job.status == "failed" and "message is not JSON" in job.error
    assert job.payload == {"raw": "{not json"}
    out = runner.run('{"job_id": "k-1", "kind": "bake", "payload": {}}')
    assert repos[0].get("k-1").error.startswith("malformed message: kind: unknown job kind")


def test_transient_errors_are_retried_then_fail_on_the_last_attempt(repos) -> None:
    calls = []

    def flaky(job_id, payload):
        calls.append(job_id)
        raise ConnectionError("storage unreachable")

    runner = JobRunner(repos[0], {"model": flaky})
    body = _msg("t-1", "model", {"version_id": "m"})
    for attempt in range(1, 5):
        with pytest.raises(ConnectionError):
            runner.run(body, dequeue_count=attempt, max_dequeue_count=5)
        job = repos[0].get("t-1")
        assert job.status == "queued" and "storage unreachable" in job.error
    with pytest.raises(ConnectionError):
        runner.run(body, dequeue_count=5, max_dequeue_count=5)
    job = repos[0].get("t-1")
    assert job.status == "failed" and job.attempts == 5
    assert job.error == "ConnectionError: storage unreachable (after 5 attempts)"
    assert len(calls) == 5


def test_permanent_error_fails_at_once(repos) -> None:
    def bad(job_id, payload):
        raise PermanentJobError("not an ONNX file")

    runner = JobRunner(repos[0], {"model": bad})
    out = runner.run(_msg("p-1", "model", {"version_id": "m"}))
    assert out.status == "failed"
    assert repos[0].get("p-1").error == "not an ONNX file"


def test_the_last_failed_attempt_lets_the_handler_give_up(repos) -> None:
    jobs, models, _ = repos
    model, _ = models.register(
        "m", sha256="c" * 64, size_bytes=1, blob_uri="u", blob_name="m/x.onnx"
    )

    from shared.inference.ingestion import ModelIngestion

    def broken_fetch(record):
        raise OSError("disk full")

    runner = JobRunner(jobs, {"model": ModelIngestion(models, broken_fetch)})
    body = _msg("g-1", "model", {"version_id": model.id})
    with pytest.raises(OSError):
        runner.run(body, dequeue_count=1, max_dequeue_count=2)
    assert models.get(model.id).status == "ingesting"  # a retry is still coming
    with pytest.raises(OSError):
        runner.run(body, dequeue_count=2, max_dequeue_count=2)
    got = models.get(model.id)
    assert got.status == "failed" and got.error == "OSError: disk full (after 2 attempts)"


def test_a_jsonl_line_without_end_is_refused_not_buffered(
    repos, store, container, monkeypatch
) -> None:
    from shared.embeddings import ingestion

    monkeypatch.setattr(ingestion, "MAX_LINE_BYTES", 1024)
    container.upload("endless.jsonl", io.BytesIO(b"x" * 5000))
    out = _runner(repos, store, container).run(
        _msg("long-1", "embeddings", {"model_id": "m", "blob": "endless.jsonl"})
    )
    assert out.status == "failed" and "longer than 1024 bytes" in out.detail


def test_a_model_over_the_upload_limit_fails_before_any_download(repos) -> None:
    from shared.inference.ingestion import ModelIngestion

    jobs, models, _ = repos
    model, _ = models.register(
        "huge", sha256="d" * 64, size_bytes=5000, blob_uri="u", blob_name="huge/x.onnx"
    )
    fetched = []
    runner = JobRunner(jobs, {"model": ModelIngestion(models, fetched.append, max_bytes=4096)})
    out = runner.run(_msg("big-1", "model", {"version_id": model.id}))
    assert out.status == "failed" and fetched == []
    error = jobs.get("big-1").error
    assert "5000 bytes" in error and "MAX_UPLOAD_BYTES" in error
    assert models.get(model.id).status == "failed" and models.get(model.id).error == error


def test_a_truncated_npy_batch_fails_with_how_far_it_got(repos, store, container) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ones((12_000, 4), np.float32))
    container.upload("cut.npy", io.BytesIO(buf.getvalue()[:-1000]))
    container.upload("cut.json", io.BytesIO(json.dumps([f"c{i}" for i in range(12_000)]).encode()))
    out = _runner(repos, store, container).run(
        _msg("npy-cut", "embeddings", {"model_id": "m", "blob": "cut.npy"})
    )
    assert out.status == "failed"
    error = repos[0].get("npy-cut").error
    assert error.startswith("cut.npy: ") and "of 12000 rows" in error
    # the whole blocks before the cut were stored (a replay upserts them again)
    _, stored, _, _ = SetRepository(repos[2].db).load_set("m", "default")
    assert stored == [f"c{i}" for i in range(10_000)]


def test_a_dimension_conflict_or_a_line_not_utf8_fails_the_job_at_once(
    repos, store, container
) -> None:
    """The handler catches the set's dimension conflict by its kind, and bytes that are not
    UTF-8 as the codec's error: both end the job on the first attempt, with the reason."""
    runner = _runner(repos, store, container)
    first = {"model_id": "d", "items": [{"entity_id": "a", "vector": [1, 0]}]}
    assert runner.run(_msg("dim-1", "embeddings", first)).status == "succeeded"
    wider = {"model_id": "d", "items": [{"entity_id": "b", "vector": [1, 0, 0]}]}
    assert runner.run(_msg("dim-2", "embeddings", wider)).status == "failed"
    job = repos[0].get("dim-2")
    assert job.attempts == 1 and "stores 2-dimensional vectors; got 3" in job.error
    container.upload("latin1.jsonl", io.BytesIO(b'{"entity_id": "caf\xe9", "vector": [1, 0]}\n'))
    out = runner.run(_msg("enc-1", "embeddings", {"model_id": "d", "blob": "latin1.jsonl"}))
    assert out.status == "failed" and repos[0].get("enc-1").error.startswith("latin1.jsonl: ")


def test_a_text_the_model_cannot_encode_fails_the_text_job_naming_it(tmp_path: Path, store) -> None:
    model = write_export(tmp_path / "m.onnx", ["sentence_embedding"])
    embedder = TextEmbedder(model, write_tokenizer(tmp_path / "tokenizer.json"))
    job = TextEmbeddingJob(store, lambda name: embedder)
    payload = EmbedTextPayload(model="m", texts=["a cat", "bad \ud800"], entity_ids=["x", "y"])
    with pytest.raises(PermanentJobError, match=r"^texts\[1\]: not valid Unicode"):
        job("text-1", payload)
    ok = EmbedTextPayload(model="m", texts=["a cat"], entity_ids=["x"])
    assert job("text-2", ok) == {"rows": 1, "inserted": 1, "updated": 0}


def test_a_duplicate_message_skips_a_running_job_and_its_owner_takes_it_over(repos) -> None:
    """Message b (a copy of a) arrives while a runs the job: b is skipped without
    raising. If a's run died (the row stays `running`), only a's redelivery runs it."""
    runs: list[str] = []
    duplicate: list[str] = []

    def handler(job_id, payload):
        runs.append(job_id)
        if len(runs) == 1:  # the copy arrives while the first run is in progress
            duplicate.append(runner.run(body, message_id="b").detail)
        return {"ok": True}

    runner = JobRunner(repos[0], {"model": handler})
    body = _msg("d-1", "model", {"version_id": "m"})
    assert runner.run(body, message_id="a").status == "succeeded"
    assert duplicate == ["already running"] and runs == ["d-1"]
    assert repos[0].get("d-1").attempts == 1

    body = _msg("d-2", "model", {"version_id": "m"})
    repos[0].create("d-2", "model", {"version_id": "m"})
    assert repos[0].claim("d-2", "a")  # a's invocation claimed it, then its host died
    assert runner.run(body, message_id="b").status == "skipped"
    assert runner.run(body, message_id="a", dequeue_count=2).status == "succeeded"
    assert repos[0].get("d-2").attempts == 2 and runs == ["d-1", "d-2"]
