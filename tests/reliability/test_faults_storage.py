"""Storage down for 20 s while jobs and requests flow, through the real host: health
and vector math keep answering, /api/ready says 503 within its deadline, the queue and
blob listeners recover by themselves once storage is back, and every message is
processed exactly once. The outage is a cut network path (a proxy that resets every
connection); Azurite behind it keeps its data, as a storage account does."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from azure.storage.queue import QueueServiceClient

from devhost.azurite import Azurite
from tests.e2e.conftest import start_host, stop_host
from tests.e2e.test_app_models import upload_blob, wait_for_model
from tests.models.fixtures import write_classifier
from tests.reliability.proxy import proxied_storage

OUTAGE_SECONDS = 20
JOBS = 40


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
    blob_proxy, queue_proxy, proxied = proxied_storage(azurite)
    run = uuid.uuid4().hex[:8]
    queue_name = f"outage-{run}"
    direct = QueueServiceClient.from_connection_string(azurite.connection_string)
    host = start_host(
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
        for i in range(JOBS // 2):
            queue.send_message(_job(i, run))
        deadline = time.monotonic() + 60  # jobs are flowing when the cut comes
        while time.monotonic() < deadline and not _succeeded(host, run):
            time.sleep(0.2)
        blob_proxy.cut()
        queue_proxy.cut()
        outage_ends = time.monotonic() + OUTAGE_SECONDS
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

        # A poll cut mid-request ends by its read timeout (15 s) and the SDK's retries.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            done = _succeeded(host, run)
            if len(done) == JOBS:
                break
            time.sleep(0.5)
        assert len(done) == JOBS, f"{len(done)} of {JOBS} jobs ran"
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
            f"storage cut {OUTAGE_SECONDS} s: health and vector math 200 throughout, /ready 503 "
            f"in at most {max(ready_seconds):.1f} s; after it, {JOBS}/{JOBS} jobs ran once "
            "(the first ones already flowing, half sent during the cut), a new model "
            "registered, poison 0",
        )
    finally:
        stop_host(host)  # fails on any failed invocation or poison message
        blob_proxy.close()
        queue_proxy.close()
