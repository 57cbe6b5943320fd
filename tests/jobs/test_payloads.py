"""Payloads too big for a queue message travel as a blob, on real Azurite and SQLite;
a message the queue refuses leaves the job failed (and retryable), never queued."""

from __future__ import annotations

import json

import numpy as np
import pytest
from azure.storage.queue import QueueServiceClient

from devhost.azurite import connection_string, free_port
from shared.embeddings.ingestion import EmbeddingsIngestion
from shared.errors import ConflictError
from shared.jobs.payloads import MAX_INLINE_BYTES, REF, PayloadStore, message_bytes
from shared.jobs.runner import JobRunner
from shared.jobs.submit import JobNotQueuedError, JobQueue, JobSubmitter, JobUnconfirmedError
from shared.storage.accounts import REQUEST_CLIENT_OPTIONS
from tests.support.proxy import CuttableProxy


def _items(rows: int, dim: int) -> list[dict]:
    rng = np.random.default_rng(7)
    return [
        {"entity_id": f"e{i}", "vector": [float(x) for x in rng.standard_normal(dim)]}
        for i in range(rows)
    ]


def test_a_big_inline_payload_travels_as_a_blob_and_runs(repos, store, container, queue) -> None:
    jobs = repos[0]
    payloads = PayloadStore(container)
    submitter = JobSubmitter(jobs, queue, payloads)
    payload = {"model_id": "big", "items": _items(200, 384)}  # ~1.5 MB of JSON
    record, created = submitter.submit("embeddings", payload, job_id="big-1")
    assert created and record.status == "queued"
    # The row keeps the reference, not 1.5 MB (and a digest to compare a resubmission with).
    assert set(record.payload) == {REF, "bytes", "sha256"}
    (sent,) = queue.client.receive_messages(max_messages=1)
    assert message_bytes(sent.content) <= MAX_INLINE_BYTES
    assert json.loads(sent.content)["payload"] == record.payload
    assert container.exists(record.payload[REF])

    runner = JobRunner(jobs, {"embeddings": EmbeddingsIngestion(store, container, 10**6)}, payloads)
    outcome = runner.run(sent.content)
    assert outcome.status == "succeeded", outcome
    assert jobs.get("big-1").result == {"rows": 200, "inserted": 200, "updated": 0}
    got = np.frombuffer(repos[2].get("e199")[0].vector, dtype="<f4")
    np.testing.assert_allclose(got, payload["items"][199]["vector"], rtol=1e-6)
    assert not container.exists(record.payload[REF])  # succeeded: nothing will read it again


def test_a_small_payload_stays_inline(repos, container, queue) -> None:
    submitter = JobSubmitter(repos[0], queue, PayloadStore(container))
    payload = {"model_id": "s", "items": _items(2, 3)}
    record, _ = submitter.submit("embeddings", payload, job_id="small-1")
    assert record.payload == payload
    (sent,) = queue.client.receive_messages(max_messages=1)
    assert json.loads(sent.content)["payload"] == payload


def test_a_reference_to_a_missing_blob_fails_the_job_once_with_the_reason(
    repos, store, container
) -> None:
    runner = JobRunner(
        repos[0],
        {"embeddings": EmbeddingsIngestion(store, container, 10**6)},
        PayloadStore(container),
    )
    body = json.dumps(
        {"job_id": "gone-1", "kind": "embeddings", "payload": {REF: "job-payload-x.json"}}
    )
    outcome = runner.run(body)
    assert outcome.status == "failed"
    assert "job-payload-x.json" in repos[0].get("gone-1").error


def test_a_message_the_queue_refuses_leaves_the_job_failed_not_queued(repos, container) -> None:
    dead = free_port()
    queues = QueueServiceClient.from_connection_string(
        connection_string(dead, dead, dead), retry_total=0
    )
    submitter = JobSubmitter(repos[0], JobQueue(queues, "nowhere"), PayloadStore(container))
    with pytest.raises(JobNotQueuedError, match="retry it with POST /api/jobs/lost-1/retry"):
        submitter.submit("embeddings", {"model_id": "m", "items": _items(1, 2)}, job_id="lost-1")
    job = repos[0].get("lost-1")
    assert job.status == "failed" and "could not be queued" in job.error
    from shared.http.errors import reply_for

    try:
        submitter.retry("lost-1")
    except JobNotQueuedError as exc:
        reply = reply_for(exc, "retry_job")
    assert (reply.status, reply.code) == (503, "not_queued")
    assert repos[0].get("lost-1").status == "failed"  # still not queued: still says so


@pytest.mark.parametrize("rows", [2, 200], ids=["inline", "blob"])
def test_a_job_id_reused_with_other_data_is_a_conflict(repos, container, queue, rows) -> None:
    """The same job_id again with the same kind and payload is the same job; with another
    payload or kind it is a ConflictError naming job_id (answering with the old job would
    silently drop the new data), inline or as a blob reference, also after the blob is gone."""
    submitter = JobSubmitter(repos[0], queue, PayloadStore(container))
    payload = {"model_id": "r", "items": _items(rows, 384)}
    first, created = submitter.submit("embeddings", payload, job_id="reuse-1")
    same = json.loads(json.dumps(payload))
    again, created_again = submitter.submit("embeddings", same, job_id="reuse-1")
    assert created and not created_again and again == first
    if REF in first.payload:
        container.delete(first.payload[REF])  # as after the job succeeded
    other = json.loads(json.dumps(payload))
    other["items"][-1]["vector"][0] += 1.0
    with pytest.raises(ConflictError, match="already exists with a different payload") as exc:
        submitter.submit("embeddings", other, job_id="reuse-1")
    assert exc.value.field == "job_id"
    with pytest.raises(ConflictError, match="different kind"):
        submitter.submit("model", {"version_id": "r"}, job_id="reuse-1")
    assert submitter.submit("embeddings", payload, job_id="reuse-1")[0] == first


def test_a_send_the_queue_does_not_answer_is_sent_once_and_reported_as_unconfirmed(
    repos, container
) -> None:
    """A send that timed out may have reached the queue: an SDK retry sent the message a
    second time while the reply said 'not queued'. Now it goes once, and the row and
    the reply say the job may still run (and a retry is possible)."""
    proxy = CuttableProxy(free_port())
    proxy.stall()  # connections accepted, nothing answered
    try:
        # The app's client options (its SDK retry, which the send must not use) with a
        # shorter read timeout: what is tested is how often the send goes, not how long
        # a read waits (10 s in the app).
        options = {**REQUEST_CLIENT_OPTIONS, "read_timeout": 2}
        queues = QueueServiceClient.from_connection_string(
            connection_string(proxy.port, proxy.port, proxy.port), **options
        )
        submitter = JobSubmitter(repos[0], JobQueue(queues, "stalled"), PayloadStore(container))
        with pytest.raises(JobUnconfirmedError, match="may still arrive") as err:
            submitter.submit("embeddings", {"model_id": "m", "items": _items(1, 2)}, "maybe-1")
        assert proxy.connections == 1  # one send, no retry of it
        job = repos[0].get("maybe-1")
        assert job.status == "failed" and "may still run" in job.error
        from shared.http.errors import reply_for

        reply = reply_for(err.value, "submit_job")
        assert (reply.status, reply.code) == (503, "not_confirmed") and reply.retry_after
    finally:
        proxy.close()
