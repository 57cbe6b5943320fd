"""Ingestion jobs through Azurite and the local host: submit, run, read, fail clearly."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

import pytest
from azure.storage.queue import QueueServiceClient

from tests.support.host import Host, wait_for_job


def test_embeddings_job_submitted_over_http_runs_and_its_vectors_are_searchable(
    app_host: Host,
) -> None:
    job_id = f"emb-{uuid.uuid4().hex[:8]}"
    items = [{"entity_id": f"j{i}", "vector": [float(i), 1.0, 0.0]} for i in range(50)]
    reply = app_host.call(
        "POST",
        "/jobs",
        {"kind": "embeddings", "job_id": job_id, "payload": {"model_id": "jobs-m", "items": items}},
    )
    assert reply.status == 202, reply.body
    assert reply.headers["location"] == f"/api/jobs/{job_id}"
    assert reply.json()["status"] == "queued"
    job = wait_for_job(app_host, job_id)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"rows": 50, "inserted": 50, "updated": 0}
    assert job["attempts"] == 1 and job["finished_at"]
    hits = app_host.call(
        "POST", "/search", {"vector": [49, 1, 0], "top_k": 1, "metric": "euclidean"}
    ).json()["results"]
    assert hits[0]["entity_id"] == "j49"
    # Same job id again: accepted, not run twice.
    again = app_host.call(
        "POST",
        "/jobs",
        {"kind": "embeddings", "job_id": job_id, "payload": {"model_id": "jobs-m", "items": items}},
    )
    assert again.status == 202 and again.json()["attempts"] == 1
    retry = app_host.call("POST", f"/jobs/{job_id}/retry")
    assert retry.status == 409 and "only failed jobs" in retry.json()["error"]["message"]


def test_bad_job_payload_is_a_400_naming_the_field(app_host: Host) -> None:
    reply = app_host.call("POST", "/jobs", {"kind": "embeddings", "payload": {"model_id": "m"}})
    assert reply.status == 400
    assert "exactly one of 'items' or 'blob'" in reply.json()["error"]["message"]
    reply = app_host.call("POST", "/jobs", {"kind": "bake", "payload": {}})
    assert reply.status == 400 and reply.json()["error"]["field"] == "kind"


def test_a_malformed_message_dropped_on_the_queue_is_a_failed_job_not_a_poison_loop(
    app_host: Host,
) -> None:
    queues = QueueServiceClient.from_connection_string(app_host.env["AzureWebJobsStorage"])
    sent = queues.get_queue_client("ingestion-jobs").send_message("this is not json")
    job_id = f"malformed-{sent.id}"
    job = wait_for_job(app_host, job_id)
    assert job["status"] == "failed" and "message is not JSON" in job["error"]
    assert job["attempts"] == 0  # recorded once, never retried
    failed = app_host.call("GET", "/jobs?status=failed&kind=unknown").json()["jobs"]
    assert job_id in [j["id"] for j in failed]
    poison = queues.get_queue_client("ingestion-jobs-poison")
    assert not any(m.content == "this is not json" for m in poison.peek_messages(max_messages=32))
    assert app_host.call("POST", f"/jobs/{job_id}/retry").status == 409


def test_a_missing_job_is_a_404(app_host: Host) -> None:
    reply = app_host.call("GET", "/jobs/does-not-exist")
    assert reply.status == 404 and reply.json()["error"]["field"] == "job_id"


def test_an_inline_batch_bigger_than_a_queue_message_runs(app_host: Host) -> None:
    """200 x 384 floats inline is ~1.5 MB of JSON, far over a queue message's 64 KiB:
    it travels as a blob and runs; the row and the message carry the reference."""
    import random

    rng = random.Random(3)
    items = [
        {"entity_id": f"big{i}", "vector": [rng.uniform(-1, 1) for _ in range(384)]}
        for i in range(200)
    ]
    job_id = f"big-{uuid.uuid4().hex[:8]}"
    payload = {"model_id": "big-inline", "items": items}
    reply = app_host.call(
        "POST", "/jobs", {"kind": "embeddings", "job_id": job_id, "payload": payload}
    )
    assert reply.status == 202, reply.body
    assert set(reply.json()["payload"]) == {"$blob", "bytes", "sha256"}
    job = wait_for_job(app_host, job_id)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"rows": 200, "inserted": 200, "updated": 0}
    hit = app_host.call(
        "POST",
        "/search",
        {"vector": items[123]["vector"], "top_k": 1, "metric": "cosine", "model_id": "big-inline"},
    ).json()["results"][0]
    assert hit["entity_id"] == "big123"


def test_duplicate_queue_messages_run_a_job_once(app_host: Host) -> None:
    """The same message 4 times for each of 4 jobs, all at once: the host runs up to 16
    messages at a time, so copies race for a job; exactly one run each (not 2-3 runs, the
    last overwriting the first's result), and every copy leaves the queue."""
    queue = QueueServiceClient.from_connection_string(
        app_host.env["AzureWebJobsStorage"]
    ).get_queue_client("ingestion-jobs")
    run = f"dup-{uuid.uuid4().hex[:8]}"
    rows = 300
    messages = {}
    for j in range(4):
        items = [{"entity_id": f"{j}-{r}", "vector": [float(j), float(r)]} for r in range(rows)]
        body = {"job_id": f"{run}-{j}", "kind": "embeddings", "payload": {"model_id": run}}
        body["payload"]["items"] = items
        messages[f"{run}-{j}"] = json.dumps(body)
    for _ in range(4):
        for text in messages.values():
            queue.send_message(text)
    for job_id in messages:
        job = wait_for_job(app_host, job_id)
        assert job["status"] == "succeeded", job
    deadline = time.monotonic() + 60
    while queue.get_queue_properties().approximate_message_count and time.monotonic() < deadline:
        time.sleep(0.2)
    assert queue.get_queue_properties().approximate_message_count == 0
    for job_id in messages:
        job = app_host.call("GET", f"/jobs/{job_id}").json()
        assert job["attempts"] == 1, job
        assert job["result"] == {"rows": rows, "inserted": rows, "updated": 0}, job
        log = app_host.wait_for_log(f"job {job_id} succeeded")
        assert log.count(f"job {job_id} succeeded") == 1


def test_a_job_id_reused_with_another_payload_or_kind_is_a_409(app_host: Host) -> None:
    job_id = f"reuse-{uuid.uuid4().hex[:8]}"

    def submit(kind: str, payload: dict):
        return app_host.call("POST", "/jobs", {"kind": kind, "job_id": job_id, "payload": payload})

    payload = {"model_id": "reuse-m", "items": [{"entity_id": "j9", "vector": [1, 1]}]}
    assert submit("embeddings", payload).status == 202
    assert submit("embeddings", payload).status == 202  # the same job again: idempotent
    other = {"model_id": "reuse-m", "items": [{"entity_id": "j10", "vector": [2, 2]}]}
    for kind, body, words in [
        ("embeddings", other, "different payload"),
        ("model", {"version_id": "reuse-m"}, "different kind"),
    ]:
        reply = submit(kind, body)
        assert reply.status == 409, reply.body
        error = reply.json()["error"]
        assert error["field"] == "job_id" and words in error["message"], error
        assert job_id in error["message"] and "already exists" in error["message"]
    job = wait_for_job(app_host, job_id)
    assert job["payload"] == payload and job["attempts"] == 1


def _strict_json(body: bytes):
    """Standard JSON only: a NaN or Infinity token fails (Python's json accepts them)."""
    return json.loads(body, parse_constant=lambda name: pytest.fail(f"{name} in a reply"))


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e39"])
def test_a_job_vector_that_is_not_finite_is_a_400_naming_the_element(
    app_host: Host, token: str
) -> None:
    """Accepted, it would be a 202 echoing `NaN`, after which GET /api/jobs is not JSON."""
    job_id = f"nan-{uuid.uuid4().hex[:8]}"
    raw = (
        f'{{"kind": "embeddings", "job_id": "{job_id}", "payload": {{"model_id": "nan-m", '
        f'"items": [{{"entity_id": "a", "vector": [1, {token}]}}]}}}}'
    ).encode()
    reply = app_host.call("POST", "/jobs", raw=raw)
    assert reply.status == 400, reply.body
    error = _strict_json(reply.body)["error"]
    assert error["code"] == "non_finite" and error["field"] == "payload.items[0].vector[1]"
    assert error["message"].startswith("payload.items[0].vector[1]: NaN, infinite or outside")
    assert app_host.call("GET", f"/jobs/{job_id}").status == 404


def test_a_queue_message_with_nan_fails_its_job_and_replies_stay_json(app_host: Host) -> None:
    """A NaN written straight to the queue is a failed job saying so; a row holding NaN
    (written straight to the table) still reads as standard JSON (null)."""
    queue = QueueServiceClient.from_connection_string(
        app_host.env["AzureWebJobsStorage"]
    ).get_queue_client("ingestion-jobs")
    job_id = f"rawnan-{uuid.uuid4().hex[:8]}"
    payload = {"model_id": "nan-m", "items": [{"entity_id": "a", "vector": [float("nan")]}]}
    queue.send_message(json.dumps({"job_id": job_id, "kind": "embeddings", "payload": payload}))
    job = wait_for_job(app_host, job_id)
    assert job["status"] == "failed" and "payload.items.0.vector.0: NaN" in job["error"], job
    written = f"direct-{uuid.uuid4().hex[:8]}"
    with sqlite3.connect(app_host.log_path.parent / "app.db") as conn:
        conn.execute(
            "INSERT INTO jobs (id, kind, status, attempts, payload, created_at, updated_at) "
            "VALUES (?, 'embeddings', 'failed', 1, ?, '2026-01-01T00:00:00.000', "
            "'2026-01-01T00:00:00.000')",
            (written, json.dumps(payload)),
        )
    got = _strict_json(app_host.call("GET", f"/jobs/{written}").body)
    assert got["payload"]["items"][0]["vector"] == [None]
    page = _strict_json(app_host.call("GET", "/jobs?limit=1000").body)["jobs"]
    assert {job_id, written} <= {j["id"] for j in page}
