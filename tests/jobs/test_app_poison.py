"""A job that keeps failing: retried up to maxDequeueCount, then the message sits in
the poison queue with its original body, and the job and model rows say why."""

from __future__ import annotations

import json
import time
from pathlib import Path

from azure.storage.queue import QueueServiceClient

from tests.support.host import start_app, stop_host, upload_blob, wait_for_job, wait_for_model
from tests.support.models import write_classifier


def test_a_failing_ingestion_ends_in_the_poison_queue_with_its_error(
    tmp_path: Path, app_storage: str
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("the model cache cannot live under a file")
    fast_retries = {
        # Azure's app-setting overrides of host.json, honoured by the local host too.
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00",
        "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.2",
        "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "3",
        "INGESTION_QUEUE": "poison-test-jobs",
        "MODELS_CONTAINER": "poison-test-models",
        "DATA_DIR": str(blocker / "data"),
    }
    host = start_app(tmp_path, app_storage, fast_retries)
    host.watch.expect("run_ingestion_job", 3, poison_queue="poison-test-jobs-poison", poison=1)
    try:
        upload_blob(
            host,
            "iris-doomed.onnx",
            write_classifier(tmp_path).read_bytes(),
            container="poison-test-models",
        )
        model = wait_for_model(host, "iris-doomed", timeout=60)
        job = wait_for_job(host, f"ingest-{model['id']}", timeout=60)
        assert job["status"] == "failed" and job["attempts"] == 3
        assert job["error"].endswith("(after 3 attempts)")
        assert "Not a directory" in job["error"] and str(tmp_path) not in job["error"]
        assert model["status"] == "failed" and model["error"] == job["error"]

        poison = QueueServiceClient.from_connection_string(app_storage).get_queue_client(
            "poison-test-jobs-poison"
        )
        deadline = time.monotonic() + 10
        bodies: list[dict] = []
        while not bodies and time.monotonic() < deadline:
            bodies = [json.loads(m.content) for m in poison.peek_messages(max_messages=32)]
            time.sleep(0.1)
        assert bodies == [
            {
                "job_id": job["id"],
                "kind": "model",
                "schema_version": 1,
                "payload": {"version_id": model["id"]},
            }
        ]
        assert host.call("GET", "/ready", key=None).status == 200  # nothing else broken
    finally:
        stop_host(host)
