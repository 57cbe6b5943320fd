"""SessionCache with real onnxruntime sessions: warmed on load, LRU bounded, one load per key."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from shared.inference.sessions import SessionCache, warmup_feeds
from shared.registry.errors import InferenceInputError, ModelValidationError
from tests.support.models import iris, write_classifier, write_mixed, write_regressor


def test_loaded_session_is_warmed_and_described(tmp_path: Path) -> None:
    cache = SessionCache(2, intra_op_threads=1)
    loaded = cache.get("clf", write_classifier(tmp_path))
    assert loaded.warmup_seconds > 0 and loaded.load_seconds > 0
    assert [(s.name, s.datatype, s.shape) for s in loaded.inputs] == [("X", "FP32", (-1, 4))]
    assert loaded.output_names == ["label", "probabilities"]
    x, _ = iris()
    label, probs = loaded.run(None, {"X": x[:5]})
    assert label.shape == (5,) and probs.shape == (5, 3)


def test_symbolic_dims_and_mixed_types_warm_up(tmp_path: Path) -> None:
    loaded = SessionCache(1).get("mixed", write_mixed(tmp_path))
    assert [(s.datatype, s.shape) for s in loaded.inputs] == [
        ("INT64", ("batch", 3)),
        ("FP16", ("batch", 2)),
        ("BOOL", ("batch",)),
    ]
    feeds = warmup_feeds(loaded.inputs, 1)
    assert {k: (v.dtype.name, v.shape) for k, v in feeds.items()} == {
        "ids": ("int64", (1, 3)),
        "half": ("float16", (1, 2)),
        "mask": ("bool", (1,)),
    }


def test_cache_is_lru_bounded(tmp_path: Path) -> None:
    cache = SessionCache(2)
    a, b, c = write_classifier(tmp_path), write_regressor(tmp_path), write_mixed(tmp_path)
    first = cache.get("a", a)
    cache.get("b", b)
    assert cache.get("a", a) is first  # hit, and a becomes most recent
    cache.get("c", c)
    assert cache.keys() == ["a", "c"]
    assert cache.loads == 3
    cache.get("b", b)
    assert cache.keys() == ["c", "b"] and cache.loads == 4


def test_concurrent_gets_load_once(tmp_path: Path) -> None:
    cache = SessionCache(2)
    path = write_classifier(tmp_path)
    results = []
    barrier = threading.Barrier(6)

    def work() -> None:
        barrier.wait()
        results.append(cache.get("k", path))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.loads == 1 and len({id(r) for r in results}) == 1


def test_unloadable_file_is_a_validation_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelValidationError) as err:
        SessionCache(1).get("bad", bad)
    assert "onnxruntime cannot load" in err.value.reason


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SessionCache(1).get("gone", tmp_path / "gone.onnx")


def test_runtime_failure_becomes_an_input_error(tmp_path: Path) -> None:
    loaded = SessionCache(1).get("clf", write_classifier(tmp_path))
    with pytest.raises(InferenceInputError, match="could not run"):
        loaded.run(None, {"X": np.zeros((2, 5), np.float32)})


def _onnx(tmp_path: Path, name: str, nodes: list, out_shape: list) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, out_shape)],
        initializer=[helper.make_tensor("shape", TensorProto.INT64, [2], [3, -1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def test_a_model_whose_made_up_warm_up_fails_still_serves_real_inputs(tmp_path: Path) -> None:
    """Warm-up feeds have batch 1; Reshape(X, [3, -1]) needs a multiple of 3 rows. The
    model is valid, so it must serve a [3, 4] request (it once answered 422 to all)."""
    from onnx import helper

    reshape = helper.make_node("Reshape", ["X", "shape"], ["Y"])
    loaded = SessionCache(1).get("reshape", _onnx(tmp_path, "reshape", [reshape], [None, None]))
    (y,) = loaded.run(None, {"X": np.ones((3, 4), np.float32)})
    assert y.shape == (3, 4)


def test_an_unloadable_model_says_why_without_a_server_path(tmp_path: Path) -> None:
    from onnx import helper

    custom = helper.make_node("FooBarOp", ["X"], ["Y"], domain="com.example")
    path = _onnx(tmp_path, "custom", [custom], [None, 4])
    with pytest.raises(ModelValidationError) as err:
        SessionCache(1).get("custom", path)
    message = str(err.value)
    assert "FooBarOp" in message and "cannot load" in message
    assert str(tmp_path) not in message and "/" not in message.replace("custom.onnx", "")
