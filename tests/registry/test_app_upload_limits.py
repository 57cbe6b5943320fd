"""MAX_UPLOAD_BYTES through the real host: a blob over the limit is refused from its
properties, with the reason in the model's status, and no invocation fails."""

from __future__ import annotations

from pathlib import Path

from tests.support.host import start_app, stop_host, upload_blob, wait_for_model

LIMIT = 4096


def test_an_oversized_model_says_why_and_nothing_fails(tmp_path: Path, app_storage: str) -> None:
    host = start_app(
        tmp_path,
        app_storage,
        {"MAX_UPLOAD_BYTES": str(LIMIT), "MODELS_CONTAINER": "limit-test-models"},
    )
    try:
        upload_blob(host, "too-big.onnx", b"x" * (LIMIT + 1), container="limit-test-models")
        model = wait_for_model(host, "too-big", timeout=30)
        assert model["status"] == "failed" and model["sha256"] is None
        assert f"over the limit of {LIMIT} (MAX_UPLOAD_BYTES)" in model["error"]
        assert host.call("GET", "/jobs?kind=model").json()["jobs"] == []  # nothing queued
        reply = host.call("POST", "/models?name=too-big-too", raw=b"x" * (LIMIT + 1))
        assert reply.status == 413 and reply.json()["error"]["code"] == "body_too_large"
    finally:
        stop_host(host)  # fails the test on any failed invocation or poison message
