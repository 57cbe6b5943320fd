"""Storage down for 20 s while jobs and requests flow, through the real host: health
and vector math keep answering, /api/ready says 503 within its deadline, the queue and
blob listeners recover by themselves once storage is back, and every job runs exactly
once. The outage is a cut network path (a proxy that resets every connection); Azurite
behind it keeps its data, as a storage account does.

The cut starts at the worst moment for the queue, whatever the machine's speed: as
Azurite's reply to a receive carrying messages is on its way, so the reply is lost and
those messages stay leased to a receive that never returned. They come back when that
lease ends, which bounds the wait after the outage."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from azure.storage.queue import QueueServiceClient

from devhost.azurite import Azurite, connection_string
from devhost.queue_listener import DEFAULT_LEASE_SECONDS
from tests.support.host import start_app, stop_host, upload_blob, wait_for_model
from tests.support.models import write_classifier
from tests.support.proxy import ReplyDroppingProxy, proxied_storage

OUTAGE_SECONDS = 20
JOBS = 40
# After the cut, every job has run once both of these are over (then a few polls at
# maxPollingInterval 1 s and the jobs themselves, SETTLE_SECONDS):
# - the lease of the messages in the lost reply (the host's default lease);
# - the SDK's retries of the receive that was cut (devhost.storage_clients: retry_total 2;
#   Storage's exponential backoff, 15 + 3 s then 15 + 9 s, each +-3 s).
RECEIVE_RETRY_SECONDS = (15 + 3 + 3) + (15 + 9 + 3)
SETTLE_SECONDS = 15


def _job(i: int, run: str) -> str:
    return json.dumps(
        {
            "job_id": f"{run}-{i}",
            "kind": "embeddings",
            "payload": {
                "model_id": f"outage-{run}",
                "items": [{"entity_id": f"e{i}", "vector": [float(i), 1.0, 0.0]}],
            },
        }
    )


def _succeeded(host, run: str) -> list[dict]:
    jobs = host.call("GET", "/jobs?kind=embeddings&status=succeeded&limit=1000").json()
    return [j for j in jobs["jobs"] if j["id"].startswith(f"{run}-")]


def test_storage_outage_is_ridden_out_and_nothing_is_lost(
    tmp_path: Path, azurite: Azurite, record_property
) -> None:
    blob_proxy, queue_proxy, _ = proxied_storage(azurite)
    # host -> trap -> cuttable proxy -> Azurite: the trap starts the cut on a receive reply
    trap = ReplyDroppingProxy(queue_proxy.port)
    proxied = connection_string(blob_proxy.port, trap.port, azurite.table_port)
    run = uuid.uuid4().hex[:8]
    queue_name = f"outage-{run}"
    direct = QueueServiceClient.from_connection_string(azurite.connection_string)
    host = start_app(
        tmp_path,
        proxied,
        {
            "INGESTION_QUEUE": queue_name,
            "MODELS_CONTAINER": f"outage-{run}",
            "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:01",
        },
        watch_queues=direct,
    )
    queue = direct.get_queue_client(queue_name)
    try:
        first = JOBS // 2 - 4
        for i in range(first):
            queue.send_message(_job(i, run))
        deadline = time.monotonic() + 60  # jobs are flowing when the cut comes
        while time.monotonic() < deadline and not _succeeded(host, run):
            time.sleep(0.2)
        trap.arm(then=lambda: (queue_proxy.cut(), blob_proxy.cut()))
        for i in range(first, JOBS // 2):  # the host's next receive takes these
            queue.send_message(_job(i, run))
        assert trap.dropped.wait(30), "no receive carried messages after the first jobs ran"
        cut_at = trap.dropped_at
        outage_ends = cut_at + OUTAGE_SECONDS
        for i in range(JOBS // 2, JOBS):  # other producers still reach storage
            queue.send_message(_job(i, run))
        ready_seconds = []
        while time.monotonic() < outage_ends:
            assert host.call("GET", "/health", key=None).status == 200
            dot = host.call("POST", "/vectors/dot", {"a": [1, 2], "b": [3, 4]})
            assert dot.status == 200 and dot.json()["result"] == 11.0
            started = time.monotonic()
            ready = host.call("GET", "/ready", key=None, timeout=30)
            ready_seconds.append(time.monotonic() - started)
            assert ready.status == 503, ready.body
            assert ready.json()["checks"]["queue_storage"] != "ok"
            time.sleep(1)
        # The probe's deadline is 1.5 s; the SDK on its own retries for minutes.
        assert max(ready_seconds) < 5, ready_seconds
        blob_proxy.restore()
        queue_proxy.restore()

        # Every job ran, and no message is left in the queue (not even a hidden one).
        deadline = cut_at + max(DEFAULT_LEASE_SECONDS, RECEIVE_RETRY_SECONDS) + SETTLE_SECONDS
        while True:
            done = _succeeded(host, run)
            left = queue.get_queue_properties().approximate_message_count
            if (len(done) == JOBS and left == 0) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        recovered = time.monotonic() - cut_at
        assert len(done) == JOBS, (
            f"{len(done)} of {JOBS} jobs ran {recovered:.0f} s after the cut "
            f"({trap.dropped_messages} message(s) were in the lost reply)"
        )
        assert left == 0, f"{left} message(s) still in the queue {recovered:.0f} s after the cut"
        # Exactly once: one attempt and one row per job (a redelivered message is skipped).
        assert sorted(j["id"] for j in done) == sorted(f"{run}-{i}" for i in range(JOBS))
        assert all(j["attempts"] == 1 for j in done), [j["attempts"] for j in done]
        assert all(j["result"]["rows"] == 1 for j in done)
        hits = host.call(
            "POST",
            "/search",
            {"vector": [0, 1, 0], "top_k": 1000, "metric": "dot", "model_id": f"outage-{run}"},
        ).json()["results"]
        assert sorted(h["entity_id"] for h in hits) == sorted(f"e{i}" for i in range(JOBS))
        assert host.call("GET", "/ready", key=None).status == 200  # recovered by itself

        # The blob listener recovered too: a model uploaded now registers.
        data = write_classifier(tmp_path, "after-outage.onnx").read_bytes()
        upload_blob(host, "after-outage.onnx", data, container=f"outage-{run}")
        assert wait_for_model(host, "after-outage", timeout=60)["status"] == "ready"
        assert direct.get_queue_client(f"{queue_name}-poison").peek_messages() == []
        record_property(
            "happened",
            f"storage cut {OUTAGE_SECONDS} s as a receive reply carrying "
            f"{trap.dropped_messages} message(s) was lost: health and vector math 200 "
            f"throughout, /ready 503 in at most {max(ready_seconds):.1f} s; {JOBS}/{JOBS} jobs "
            f"ran once (half sent during the cut), all done {recovered:.0f} s after the cut "
            f"(lease {DEFAULT_LEASE_SECONDS} s), a new model registered, poison 0",
        )
    finally:
        stop_host(host)  # fails on any failed invocation or poison message
        trap.close()
        blob_proxy.close()
        queue_proxy.close()
