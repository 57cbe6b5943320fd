"""Model flow through Azurite and the local host: upload -> registered -> ingested ->
metadata -> inference equal to a bare onnxruntime run; a corrupt file fails clearly."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from azure.storage.blob import BlobServiceClient

from tests.support.host import Host, upload_blob, wait_for_job, wait_for_model
from tests.support.models import iris, write_classifier


def test_uploaded_blob_is_registered_ingested_and_served(app_host: Host, tmp_path: Path) -> None:
    path = write_classifier(tmp_path, "iris-mlp.onnx")
    upload_blob(app_host, "iris-mlp.onnx", path.read_bytes())

    model = wait_for_model(app_host, "iris-mlp")
    assert model["status"] == "ready", model
    assert model["version"] == 1 and model["size_bytes"] == path.stat().st_size
    job = wait_for_job(app_host, f"ingest-{model['id']}")
    assert job["status"] == "succeeded" and job["result"]["parameters"] > 0
    assert job["result"]["version_id"] == model["id"]
    detail = app_host.call("GET", f"/models/{model['id']}").json()
    assert detail["tensors"] and all("mean_value" in t for t in detail["tensors"])
    missing = app_host.call("GET", "/models/iris-mlp")  # a name is no version's id
    assert missing.status == 404 and missing.json()["error"]["field"] == "version_id"

    meta = app_host.call("GET", "/v2/models/iris-mlp").json()
    assert meta["name"] == "iris-mlp" and meta["platform"] == "onnx_onnxv1"
    assert meta["versions"] == ["1"]
    (inp,) = meta["inputs"]
    assert inp["datatype"] == "FP32" and inp["shape"][-1] == 4
    assert app_host.call("GET", "/v2/models/iris-mlp/ready").status == 200

    x = iris()[0][:5]
    request = {
        "id": "req-1",
        "inputs": [{"name": inp["name"], "shape": [5, 4], "datatype": "FP32", "data": x.tolist()}],
    }
    reply = app_host.call("POST", "/v2/models/iris-mlp/infer", request)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["model_name"] == "iris-mlp" and body["model_version"] == "1"
    assert body["id"] == "req-1"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    bare = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {inp["name"]: x}),
            strict=True,
        )
    )
    for out in body["outputs"]:
        want = bare[out["name"]]
        got = np.asarray(out["data"]).reshape(out["shape"])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    probs = next(o for o in body["outputs"] if o["datatype"] == "FP32")
    confidence = probs["parameters"]["confidence"]
    np.testing.assert_allclose(confidence, bare[probs["name"]].max(axis=1), rtol=1e-6)


def test_bad_inference_input_names_the_input(app_host: Host, tmp_path: Path) -> None:
    path = write_classifier(tmp_path, "iris-bad-input.onnx")
    upload_blob(app_host, "iris-bad-input.onnx", path.read_bytes())
    assert wait_for_model(app_host, "iris-bad-input")["status"] == "ready"
    name = app_host.call("GET", "/v2/models/iris-bad-input").json()["inputs"][0]["name"]
    reply = app_host.call(
        "POST",
        "/v2/models/iris-bad-input/infer",
        {"inputs": [{"name": name, "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
    )
    assert reply.status == 400
    assert name in reply.json()["error"]
    one = {"inputs": [{"name": name, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    missing = app_host.call("POST", "/v2/models/no-such-model/infer", one)
    assert missing.status == 404 and "no-such-model" in missing.json()["error"]


def test_corrupt_file_fails_with_a_clear_reason_and_breaks_nothing(app_host: Host) -> None:
    upload_blob(app_host, "broken.onnx", b"this is not a protobuf at all" * 100)
    model = wait_for_model(app_host, "broken")
    assert model["status"] == "failed"
    assert model["error"] and "Traceback" not in model["error"]
    job = wait_for_job(app_host, f"ingest-{model['id']}")
    assert job["status"] == "failed" and job["error"] == model["error"]
    assert job["attempts"] == 1  # a permanent failure is not retried
    one = {"inputs": [{"name": "X", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    reply = app_host.call("POST", "/v2/models/broken/infer", one)
    assert reply.status == 409 and "failed" in reply.json()["error"]
    assert app_host.call("GET", "/ready", key=None).status == 200


def test_same_bytes_again_do_not_make_a_version_new_bytes_do(
    app_host: Host, tmp_path: Path
) -> None:
    path = write_classifier(tmp_path, "iris-v.onnx")
    reply = app_host.call("POST", "/models?name=iris-v", raw=path.read_bytes())
    assert reply.status == 202, reply.body
    first = reply.json()
    assert first["created"] and first["model"]["version"] == 1
    assert first["job_url"] == f"/api/jobs/{first['job_id']}"
    assert wait_for_model(app_host, "iris-v")["status"] == "ready"
    again = app_host.call("POST", "/models?name=iris-v", raw=path.read_bytes()).json()
    assert not again["created"] and again["model"]["id"] == first["model"]["id"]
    changed = path.read_bytes() + b"\x00"  # trailing byte: still parses as the same graph
    second = app_host.call("POST", "/models?name=iris-v", raw=changed).json()
    assert second["created"] and second["model"]["version"] == 2
    time.sleep(1.0)  # the blob trigger sees the same uploads: it must not add versions
    versions = [m["version"] for m in app_host.call("GET", "/models?name=iris-v").json()["models"]]
    assert versions == [2, 1]


def test_upload_url_lets_a_client_put_the_file_straight_to_storage(
    app_host: Host, tmp_path: Path
) -> None:
    import urllib.request

    assert app_host.call("POST", "/models/upload-url?name=iris-put", key=None).status == 401
    reply = app_host.call("POST", "/models/upload-url?name=iris-put&expires_in=600")
    assert reply.status == 200, reply.body
    up = reply.json()
    assert up["method"] == "PUT" and up["blob"] == "models/iris-put.onnx"
    assert up["max_bytes"] > 0 and up["expires_at"]
    data = write_classifier(tmp_path, "iris-put.onnx").read_bytes()
    put = urllib.request.Request(up["url"], data=data, method="PUT", headers=up["headers"])
    with urllib.request.urlopen(put) as stored:
        assert stored.status == 201
    model = wait_for_model(app_host, "iris-put")
    assert model["status"] == "ready" and model["size_bytes"] == len(data)
    assert model["metadata"]["uploaded_as"] == "iris-put.onnx"

    for bad in ("name=../x", "name=ok&expires_in=5", "name=ok&expires_in=999999"):
        refused = app_host.call("POST", f"/models/upload-url?{bad}")
        assert refused.status == 400 and refused.json()["error"]["field"] in ("name", "expires_in")


@pytest.mark.parametrize("name", ["../evil", "a/b", "x" * 200, "a..b"])
def test_upload_refuses_bad_names(app_host: Host, name: str) -> None:
    reply = app_host.call("POST", f"/models?name={name}", raw=b"bytes")
    assert reply.status == 400 and reply.json()["error"]["field"] == "name"
    url = app_host.call("POST", f"/models/upload-url?name={name}")
    assert url.status == 400 and url.json()["error"]["field"] == "name"


def test_nested_names_in_the_models_container_are_ignored_once_without_a_failure(
    app_host: Host,
) -> None:
    """`models/{name}.onnx` matches `team/nested.onnx` too: one warning, no failed
    invocation, no poison message (the fixture checks both), no model."""
    upload_blob(app_host, "team/nested.onnx", b"not looked at")
    line = "ignored blob team/nested.onnx"
    app_host.wait_for_log(line)
    time.sleep(1.0)  # later scans of the container must not fire it again
    assert app_host.log().count(line) == 1
    assert app_host.call("GET", "/models?name=nested").json()["models"] == []


def test_a_blob_with_bad_registration_metadata_becomes_a_failed_version_that_says_why(
    app_host: Host, tmp_path: Path
) -> None:
    """The uploader of a blob looks at GET /api/models, not at the host's log: a bad
    x-ms-meta-embedding_output is a failed version there, not just a log warning."""
    data = write_classifier(tmp_path, "meta-bad.onnx").read_bytes()
    service = BlobServiceClient.from_connection_string(app_host.env["AzureWebJobsStorage"])
    service.get_blob_client("models", "meta-bad.onnx").upload_blob(
        io.BytesIO(data), overwrite=True, metadata={"embedding_output": "bad name!"}
    )
    model = wait_for_model(app_host, "meta-bad")
    assert model["status"] == "failed", model
    assert "x-ms-meta-embedding_output: 'bad name!' is not an output name" in model["error"]
    service.get_blob_client("models", "meta-bad.onnx").upload_blob(  # fixed: it registers
        io.BytesIO(data), overwrite=True, metadata={"embedding_output": "probabilities"}
    )
    deadline = time.monotonic() + 60
    while (model := wait_for_model(app_host, "meta-bad"))["status"] != "ready":
        assert time.monotonic() < deadline, model
        time.sleep(0.2)


def test_a_model_onnxruntime_cannot_load_fails_its_registration(
    app_host: Host, tmp_path: Path
) -> None:
    """onnx's checker accepts an op of an unknown domain; onnxruntime cannot run it. Listed
    ready, the model would answer 422 to every request; its registration fails instead,
    with onnxruntime's reason (and no server path)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("FooBarOp", ["X"], ["Y"], domain="com.example")],
        "custom",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path / "custom-op.onnx"
    onnx.save(model, str(path))
    assert app_host.call("POST", "/models?name=custom-op", raw=path.read_bytes()).status == 202
    got = wait_for_model(app_host, "custom-op")
    assert got["status"] == "failed", got
    assert "onnxruntime cannot load the model" in got["error"] and "FooBarOp" in got["error"]
    assert "model-cache" not in got["error"] and "/tmp" not in got["error"]  # no server path
    index = app_host.call("POST", "/v2/repository/index", {}).json()
    assert {"name": "custom-op", "version": "1"} | {"state": "UNAVAILABLE"} in [
        {k: m[k] for k in ("name", "version", "state")} for m in index
    ]


def test_a_models_batching_limits_are_part_of_its_registration(
    app_host: Host, tmp_path: Path
) -> None:
    """`batch_max_size` / `batch_max_delay_ms` on the upload (query, or the URL's blob
    metadata) are kept with the version; bad values are refused naming the option."""
    import urllib.request

    data = write_classifier(tmp_path, "iris-batched.onnx").read_bytes()
    for field, bad in (("batch_max_size", "0"), ("batch_max_delay_ms", "-1")):
        refused = app_host.call("POST", f"/models?name=iris-batched&{field}={bad}", raw=data)
        assert refused.status == 400 and refused.json()["error"]["field"] == field
    reply = app_host.call(
        "POST", "/models?name=iris-batched&batch_max_size=8&batch_max_delay_ms=2", raw=data
    )
    assert reply.status == 202, reply.body
    model = wait_for_model(app_host, "iris-batched")
    assert model["status"] == "ready", model
    assert model["metadata"]["batch_max_size"] == "8"
    assert float(model["metadata"]["batch_max_delay_ms"]) == 2.0

    up = app_host.call("POST", "/models/upload-url?name=iris-solo&batch_max_size=1").json()
    assert up["headers"]["x-ms-meta-batch_max_size"] == "1"
    put = urllib.request.Request(up["url"], data=data, method="PUT", headers=up["headers"])
    with urllib.request.urlopen(put) as stored:
        assert stored.status == 201
    model = wait_for_model(app_host, "iris-solo")
    assert model["status"] == "ready" and model["metadata"]["batch_max_size"] == "1", model

    service = BlobServiceClient.from_connection_string(app_host.env["AzureWebJobsStorage"])
    service.get_blob_client("models", "iris-lots.onnx").upload_blob(
        io.BytesIO(data), overwrite=True, metadata={"batch_max_size": "lots"}
    )
    model = wait_for_model(app_host, "iris-lots")
    assert model["status"] == "failed", model
    assert "x-ms-meta-batch_max_size: 'lots' must be a whole number of rows" in model["error"]
