"""Model files under fault, through the real host: a cached file corrupted on disk is
caught by its sha256 and fetched again; a model whose blob was deleted from storage is
marked unavailable with the reason, and nothing fails (no 5xx, no failed invocation)."""

from __future__ import annotations

from pathlib import Path

from azure.storage.blob import BlobServiceClient

from tests.support.host import start_app, stop_host, wait_for_model
from tests.support.models import iris, write_classifier

REQUEST = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": []}]}


def _infer(host, name: str):
    body = {**REQUEST, "inputs": [{**REQUEST["inputs"][0], "data": iris()[0][0].tolist()}]}
    return host.call("POST", f"/v2/models/{name}/infer", body)


def test_a_corrupted_cache_file_is_fetched_again(
    tmp_path: Path, storage_connection: str, record_property
) -> None:
    data_dir = tmp_path / "shared-data"
    env = {"DATA_DIR": str(data_dir), "SQL_CONNECTION_STRING": f"sqlite:///{tmp_path / 'db'}"}
    (tmp_path / "a").mkdir()
    first = start_app(tmp_path / "a", storage_connection, env)
    try:
        data = write_classifier(tmp_path, "iris-cache.onnx").read_bytes()
        assert first.call("POST", "/models?name=iris-cache", raw=data).status == 202
        assert wait_for_model(first, "iris-cache")["status"] == "ready"
        assert _infer(first, "iris-cache").status == 200
    finally:
        stop_host(first)
    (cached,) = list((data_dir / "model-cache").glob("*/model.onnx"))
    cached.write_bytes(b"\0" * cached.stat().st_size)  # the disk lost it
    (tmp_path / "b").mkdir()
    second = start_app(tmp_path / "b", storage_connection, env)
    try:
        reply = _infer(second, "iris-cache")
        assert reply.status == 200, reply.body
        assert cached.read_bytes() == data  # fetched again, verified
        second.wait_for_log("failed its sha256 check")
        record_property(
            "happened",
            "cached model zeroed on disk: the new process's sha256 check caught it, fetched it "
            "again, inference 200",
        )
    finally:
        stop_host(second)


def test_a_deleted_model_blob_marks_the_model_unavailable(
    tmp_path: Path, storage_connection: str, record_property
) -> None:
    host = start_app(tmp_path, storage_connection)
    try:
        data = write_classifier(tmp_path, "iris-gone.onnx").read_bytes()
        assert host.call("POST", "/models?name=iris-gone", raw=data).status == 202
        model = wait_for_model(host, "iris-gone")
        assert model["status"] == "ready"
        blob = model["blob_uri"].split("/model-versions/", 1)[1]
        BlobServiceClient.from_connection_string(storage_connection).get_blob_client(
            "model-versions", blob
        ).delete_blob()
        for entry in (tmp_path / "data" / "model-cache").glob("*/model.onnx"):
            entry.unlink()  # nothing cached either (a new instance)
        stop_host(host)
        host = start_app(tmp_path, storage_connection)
        reply = _infer(host, "iris-gone")
        assert reply.status == 409, reply.body
        assert "was deleted from Blob Storage" in reply.json()["error"]
        listed = host.call("GET", "/models?name=iris-gone").json()["models"][0]
        assert listed["status"] == "failed" and "upload the model again" in listed["error"]
        assert _infer(host, "iris-gone").status == 409  # says so again, no 5xx
        record_property(
            "happened",
            "model blob deleted: the version is marked failed with the reason, inference "
            "answers 409 saying so (twice), never 5xx",
        )
    finally:
        stop_host(host)
