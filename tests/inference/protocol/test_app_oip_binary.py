"""The Open Inference Protocol's binary tensor data extension, with the standard client
(tritonclient.http, with its defaults: binary inputs, all outputs binary), and its
repository and statistics extensions; bad framing is a 400 that says which input."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from tests.support.host import Host, wait_for_model
from tests.support.models import iris, write_classifier, write_mixed


def write_echo(folder: Path) -> Path:
    """A string model: text [batch] STRING -> echo [batch] STRING."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["echo"])],
        "echo",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["batch"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "echo.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(app_host: Host, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("oip-binary")
    paths = {
        "iris-bin": write_classifier(folder, "iris-bin.onnx"),
        "mixed-bin": write_mixed(folder, "mixed-bin.onnx"),
        "echo-bin": write_echo(folder),
    }
    for name, path in paths.items():
        assert app_host.call("POST", f"/models?name={name}", raw=path.read_bytes()).status == 202
    for name in paths:
        assert wait_for_model(app_host, name)["status"] == "ready"
    return paths


@pytest.fixture
def client(app_host: Host) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=app_host.base_url.removeprefix("http://"))


def _key(app_host: Host) -> dict[str, str]:
    return {"x-functions-key": app_host.key}


def test_the_standard_client_works_with_its_defaults(app_host, models, client) -> None:
    x = iris()[0][:7].astype(np.float32)
    inp = triton.InferInput("X", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)  # binary by default
    result = client.infer("iris-bin", [inp], headers=_key(app_host))
    bare = ort.InferenceSession(str(models["iris-bin"]), providers=["CPUExecutionProvider"])
    label, probabilities = bare.run(None, {"X": x})
    np.testing.assert_array_equal(result.as_numpy("label"), label)
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)
    response = result.get_response()
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])


def test_int64_fp16_bool_and_bytes_round_trip(app_host, models, client) -> None:
    ids = np.array([[1, 2, 3], [40, 50, 60]], dtype=np.int64)
    half = np.array([[0.5, -1.25], [3.0, 8.0]], dtype=np.float16)
    mask = np.array([True, False])
    inputs = []
    for name, arr, dt in (("ids", ids, "INT64"), ("half", half, "FP16"), ("mask", mask, "BOOL")):
        inp = triton.InferInput(name, list(arr.shape), dt)
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    outputs = [triton.InferRequestedOutput("ids_plus"), triton.InferRequestedOutput("mask_not")]
    result = client.infer("mixed-bin", inputs, outputs=outputs, headers=_key(app_host))
    np.testing.assert_array_equal(result.as_numpy("ids_plus"), ids + 1)
    np.testing.assert_array_equal(result.as_numpy("mask_not"), ~mask)
    assert result.as_numpy("half_twice") is None  # not asked for

    texts = np.array(["héllo", "", "a longer sentence"], dtype=np.object_)
    inp = triton.InferInput("text", [3], "BYTES")
    inp.set_data_from_numpy(texts)
    echoed = client.infer("echo-bin", [inp], headers=_key(app_host)).as_numpy("echo")
    assert [e.decode() for e in echoed] == list(texts)


def test_json_in_binary_out_for_one_output(app_host, models) -> None:
    request = {
        "inputs": [
            {"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
        ],
        "outputs": [
            {"name": "probabilities", "parameters": {"binary_data": True}},
            {"name": "label"},
        ],
    }
    reply = app_host.call("POST", "/v2/models/iris-bin/infer", request)
    assert reply.status == 200, reply.body
    n = int(reply.headers["inference-header-content-length"])
    header = json.loads(reply.body[:n])
    by_name = {o["name"]: o for o in header["outputs"]}
    assert "data" in by_name["label"] and "data" not in by_name["probabilities"]
    probs = np.frombuffer(reply.body[n:], dtype="<f4")
    assert probs.shape == (3,) and by_name["probabilities"]["parameters"]["binary_data_size"] == 12
    assert abs(float(probs.sum()) - 1.0) < 1e-5


def _raw(app_host: Host, header: dict, tail: bytes, length: int | None = None):
    body = json.dumps(header).encode()
    return app_host.call(
        "POST",
        "/v2/models/iris-bin/infer",
        raw=body + tail,
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(body) if length is None else length),
        },
    )


def test_bad_framing_is_a_400_that_names_the_input(app_host, models) -> None:
    x = np.zeros((1, 4), dtype="<f4").tobytes()
    inp = {"name": "X", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}
    cases = [
        (_raw(app_host, {"inputs": [inp]}, x, length=10_000), "past the end"),
        (_raw(app_host, {"inputs": [{**inp, "parameters": {"binary_data_size": 12}}]}, x), "'X'"),
        (_raw(app_host, {"inputs": [{**inp, "parameters": {"binary_data_size": 32}}]}, x), "'X'"),
        (_raw(app_host, {"inputs": [inp]}, x + b"\0" * 4), "accounts for"),
        (_raw(app_host, {"inputs": [{**inp, "shape": [2, 4]}]}, x), "'X'"),
        (app_host.call("POST", "/v2/models/iris-bin/infer", {"inputs": [inp]}), "'X'"),
    ]
    for reply, words in cases:
        assert reply.status == 400, reply.body
        assert words in reply.json()["error"], reply.json()


def test_a_cut_bytes_element_is_a_400(app_host, models) -> None:
    tail = struct.pack("<I", 50) + b"short"
    inp = {
        "name": "text",
        "shape": [1],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(tail)},
    }
    body = json.dumps({"inputs": [inp]}).encode()
    reply = app_host.call(
        "POST",
        "/v2/models/echo-bin/infer",
        raw=body + tail,
        headers={"Inference-Header-Content-Length": str(len(body))},
    )
    assert reply.status == 400 and "'text'" in reply.json()["error"]


def test_server_metadata_repository_index_and_statistics(app_host, models, client) -> None:
    meta = client.get_server_metadata(headers=_key(app_host))
    assert "binary_tensor_data" in meta["extensions"]
    index = client.get_model_repository_index(headers=_key(app_host))
    states = {(m["name"], m["version"]): m["state"] for m in index}
    assert states[("iris-bin", "1")] == "READY"
    x = iris()[0][:3].astype(np.float32)
    inp = triton.InferInput("X", [3, 4], "FP32")
    inp.set_data_from_numpy(x)
    before = client.get_inference_statistics("iris-bin", headers=_key(app_host))
    client.infer("iris-bin", [inp], headers=_key(app_host))
    after = client.get_inference_statistics("iris-bin", headers=_key(app_host))
    (old,), (new,) = before["model_stats"], after["model_stats"]
    assert new["execution_count"] == old["execution_count"] + 1
    assert new["inference_count"] == old["inference_count"] + 3
    success = new["inference_stats"]["success"]
    assert success["count"] == old["inference_stats"]["success"]["count"] + 1
    assert success["ns"] > old["inference_stats"]["success"]["ns"]
    assert app_host.call("GET", "/v2/models/nope/stats").status == 404


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_the_standard_client_with_request_compression(app_host, models, client, algorithm) -> None:
    """tritonclient compresses the request when asked (Content-Encoding); read as the raw
    bytes, it would fail with 'not valid JSON: can't decode byte 0x8b'."""
    x = iris()[0][:5].astype(np.float32)
    inp = triton.InferInput("X", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer(
        "iris-bin", [inp], headers=_key(app_host), request_compression_algorithm=algorithm
    )
    bare = ort.InferenceSession(str(models["iris-bin"]), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(result.as_numpy("label"), bare.run(None, {"X": x})[0])


def test_a_compressed_body_is_held_to_the_limit_after_decoding(app_host: Host) -> None:
    """A small gzip body must not unpack into gigabytes: the decoded size is limited
    too; an unknown encoding is a 415 that names it."""
    import gzip

    bomb = gzip.compress(b" " * (120 * 1024 * 1024))  # ~120 KB that decodes to 120 MiB
    headers = {"Content-Encoding": "gzip"}
    reply = app_host.call("POST", "/v2/models/iris-bin/infer", raw=bomb, headers=headers)
    assert reply.status == 413 and "decoded from gzip" in reply.json()["error"]
    reply = app_host.call(
        "POST", "/v2/models/iris-bin/infer", raw=b"{}", headers={"Content-Encoding": "br"}
    )
    assert reply.status == 415 and "'br' is not supported" in reply.json()["error"]
    body = gzip.compress(b'{"a": [3, 4]}')
    reply = app_host.call("POST", "/vectors/norm", raw=body, headers=headers)
    assert reply.status == 200 and reply.json()["result"] == 5
