"""Storage that stops answering (connections accepted, nothing answered, as a paused
Azurite or an overloaded account looks), through the real host: requests that need
storage answer 503 with Retry-After well within Azure's 230 s front-end cut, search
answers from SQL, and a job whose send went unanswered says so and can be retried.

With the storage SDK's defaults (a 60 s read timeout, three retries and 15 s+ back-offs)
each of these calls takes 5-5.5 minutes: every call here would miss the deadline.
The calls that wait on storage go at once (each timed on its own), so the test takes about
as long as the slowest of them, not their sum."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from azure.storage.queue import QueueServiceClient

from devhost.azurite import Azurite
from tests.support.host import Host, start_app, stop_host, wait_for_job
from tests.support.models import write_classifier
from tests.support.proxy import proxied_storage

#: Half of Azure's 230 s front-end cut, far below the 320 s these calls take with the SDK's
#: defaults.
DEADLINE = 115
COMPRESS_FROM = 50


def _timed(host: Host, method: str, path: str, body=None, raw: bytes | None = None):
    started = time.monotonic()
    reply = host.call(method, path, body, raw=raw, timeout=DEADLINE + 60)
    return reply, time.monotonic() - started


def _items(prefix: str, n: int) -> list[dict]:
    return [{"entity_id": f"{prefix}{i}", "vector": [float(i), 1.0, 0.5]} for i in range(n)]


def test_storage_that_does_not_answer_gives_503s_and_sql_searches_in_bounded_time(
    tmp_path: Path, azurite: Azurite, record_property
) -> None:
    blob_proxy, queue_proxy, proxied = proxied_storage(azurite)
    run = uuid.uuid4().hex[:8]
    host = start_app(
        tmp_path,
        proxied,
        {
            "INGESTION_QUEUE": f"stall-{run}",
            "MODELS_CONTAINER": f"stall-{run}",
            "SEARCH_COMPRESS_FROM_ROWS": str(COMPRESS_FROM),
            "SEARCH_SNAPSHOT_SETTLE_SECONDS": "0",
        },
        watch_queues=QueueServiceClient.from_connection_string(azurite.connection_string),
    )
    small, big = f"small-{run}", f"big-{run}"
    model = write_classifier(tmp_path, "stall.onnx").read_bytes()
    try:
        for model_id, n in ((small, 1), (big, COMPRESS_FROM + 10)):
            reply = host.call("PUT", "/embeddings", {"model_id": model_id, "items": _items("e", n)})
            assert reply.status == 200, reply.body
            search = {"vector": [1, 1, 0.5], "top_k": 3, "model_id": model_id}
            assert host.call("POST", "/search", search).status == 200  # loaded, cached

        blob_proxy.stall()
        queue_proxy.stall()
        # A write moves each set's version: the next search loads it again.
        for model_id in (small, big):
            items = [{"entity_id": "new", "vector": [1000.0, 1.0, 0.5]}]
            reply = host.call("PUT", "/embeddings", {"model_id": model_id, "items": items})
            assert reply.status == 200, reply.body

        def search(model_id: str):
            body = {"vector": [1, 0, 0], "top_k": 1, "metric": "dot", "model_id": model_id}
            return _timed(host, "POST", "/search", body)

        job_id = f"stall-{run}"
        job = {"kind": "embeddings", "job_id": job_id, "payload": {"model_id": small, "items": []}}
        job["payload"]["items"] = [{"entity_id": "viajob", "vector": [0.0, 2.0, 0.5]}]
        # A set below the compression threshold has no snapshot: storage is not asked.
        # Timed alone, before the calls that wait on storage start.
        replies = {"search_small": search(small)}
        with ThreadPoolExecutor(3) as calls:
            waiting = {
                "search_big": calls.submit(search, big),
                "upload_model": calls.submit(
                    _timed, host, "POST", f"/models?name=stall{run}", raw=model
                ),
                "submit_job": calls.submit(_timed, host, "POST", "/jobs", job),
            }
            replies.update({name: call.result() for name, call in waiting.items()})
        took = {name: seconds for name, (_, seconds) in replies.items()}

        for name in ("search_small", "search_big"):
            reply = replies[name][0]
            assert reply.status == 200, reply.body
            assert reply.json()["results"][0]["entity_id"] == "new"

        reply = replies["upload_model"][0]
        assert reply.status == 503, reply.body
        assert reply.json()["error"]["code"] == "storage_unavailable"
        assert int(reply.headers["retry-after"]) > 0

        reply = replies["submit_job"][0]
        assert reply.status == 503, reply.body
        assert reply.json()["error"]["code"] == "not_confirmed"
        assert "may still arrive" in reply.json()["error"]["message"]
        assert int(reply.headers["retry-after"]) > 0
        row = host.call("GET", f"/jobs/{job_id}").json()
        assert row["status"] == "failed" and "may still run" in row["error"], row

        assert max(took.values()) < DEADLINE, took
        # The small set's search never waited on storage: no slower than the 503s.
        assert took["search_small"] < min(took["upload_model"], took["submit_job"]), took

        blob_proxy.restore()
        queue_proxy.restore()
        # The stalled send never reached the queue: a retry of the same job runs it once.
        assert host.call("POST", f"/jobs/{job_id}/retry").status == 202
        done = wait_for_job(host, job_id, timeout=120)
        assert done["status"] == "succeeded" and done["attempts"] == 1, done
        record_property(
            "happened",
            "storage stalled: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in took.items())
            + "; the unconfirmed job retried and ran once",
        )
    finally:
        stop_host(host)
        blob_proxy.close()
        queue_proxy.close()
