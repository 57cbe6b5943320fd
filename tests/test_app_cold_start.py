"""A cold instance's first invocations, all at once, through the real host.

A fresh worker imports the app's modules on first use. When its first invocations
arrive together (an upload, the blob trigger firing for a blob that arrived while no
instance ran, other routes), they import the same modules on several threads at once.
Where two of those imports can wait for each other's module lock (a package ``__init__``
that imports its own modules), Python raises ``_DeadlockError`` in one thread: a 500
``internal_error`` for whichever request loses. ``tests/test_import_locks.py`` rules the
cause out statically; this test checks the symptom through the host.
"""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from tests.support.host import Host, start_app, stop_host, wait_for_model
from tests.support.models import write_classifier

#: Fresh hosts, each met by its first requests at once. With a package that imports its
#: own modules, about two rounds in three answered a 500 (measured on this machine).
ROUNDS = 2
CONTAINER = "cold-start-models"  # the blobs left here fire on these hosts only


def _first_requests(host: Host, model: bytes, name: str) -> list[tuple[str, int, int]]:
    """Every request a cold instance gets at once; (path, expected, answered) each."""
    calls = [
        ("POST", f"/models?name={name}", model, 202),
        ("GET", "/models", None, 200),
        ("GET", "/jobs", None, 200),
        ("POST", "/jobs", b'{"kind": "embeddings", "payload": {"items": []}}', 400),
        ("POST", "/search", b'{"vector": [1, 2], "top_k": 1}', 200),
        ("GET", "/analytics/models", None, 200),
    ]
    start = threading.Barrier(len(calls))
    answers: list[tuple[str, int, int]] = []

    def call(method: str, path: str, body: bytes | None, expected: int) -> None:
        start.wait()
        reply = host.call(method, path, raw=body, timeout=120)
        answers.append((f"{method} {path}", expected, reply.status))

    threads = [threading.Thread(target=call, args=c) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


@pytest.mark.timeout(600)
def test_first_invocations_of_a_cold_instance_at_once_answer_no_500(
    tmp_path: Path, app_storage: str
) -> None:
    model = write_classifier(tmp_path).read_bytes()
    blobs = BlobServiceClient.from_connection_string(app_storage)
    container = blobs.get_container_client(CONTAINER)
    if not container.exists():
        container.create_container()
    for r in range(ROUNDS):
        left, uploaded = f"cold{r}-left", f"cold{r}"
        # Arrived while no instance ran: the trigger fires as the host starts.
        container.upload_blob(f"{left}.onnx", io.BytesIO(model), overwrite=True)
        folder = tmp_path / f"host{r}"
        folder.mkdir()
        host = start_app(folder, app_storage, {"MODELS_CONTAINER": CONTAINER})
        try:
            answers = _first_requests(host, model, uploaded)
            unhandled = re.findall(r"unhandled error in \w+", host.log())
            assert not unhandled, (r, answers, host.log()[-4000:])
            assert all(expected == got for _, expected, got in answers), (r, answers)
            # Nothing left for a later host: both models settled, both triggers ran.
            for name in (left, uploaded):
                assert wait_for_model(host, name)["status"] == "ready"
            host.wait_for_log(f"model {left} v1 registered", 60)
            host.wait_for_log(f"model {uploaded} v1 already registered", 60)
        finally:
            stop_host(host)  # also fails on any failed invocation or poison message
