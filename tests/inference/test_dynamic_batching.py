"""Concurrent inference calls of one model version run as one call of the model, and
each caller gets exactly what it would have got alone."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from shared.batching import BatchLimits
from shared.db.connection import Database
from shared.inference.protocol.types import InferRequest, InferResponse, TensorSpec
from shared.inference.sessions import has_batch_dimension
from shared.registry.errors import InferenceInputError
from tests.support.concurrent import together
from tests.support.inference import Harness, build_harness
from tests.support.models import iris, write_classifier, write_mixed

ROWS = [1, 3, 1, 2, 5, 1, 2, 1]  # eight callers, 16 rows in all


def fp32(x: np.ndarray, **extra) -> InferRequest:
    return InferRequest(
        inputs=[{"name": "X", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}],
        **extra,
    )


def outputs(response: InferResponse) -> dict[str, np.ndarray]:
    return {o.name: np.asarray(o.data).reshape(o.shape) for o in response.outputs}


def batching(db: Database, tmp: Path, size: int = sum(ROWS)) -> Harness:
    """A long delay: a batch runs when full, so one run holds every caller below."""
    return build_harness(db, tmp, BatchLimits(max_size=size, max_delay_ms=5000, max_queue=64))


def unbatched(h: Harness, tmp: Path) -> Harness:
    """A service without batching over the same models (and the same stand-in blobs)."""
    alone = build_harness(h.db, tmp / "alone")
    alone.blobs.update(h.blobs)
    return alone


def test_concurrent_calls_share_one_run_and_each_gets_its_own_rows(db, tmp_path) -> None:
    h = batching(db, tmp_path)
    h.register("iris", write_classifier(tmp_path))
    x = iris()[0]
    starts = np.cumsum([0, *ROWS])
    parts = [x[a:b] for a, b in zip(starts[:-1] * 7, starts[:-1] * 7 + ROWS, strict=True)]
    got = together(len(parts), lambda i: h.service.infer("iris", None, fp32(parts[i])))
    assert h.service.batching.batchers.batches == 1  # eight callers, one run
    # Every caller has its own log row, with its own row count.
    assert sorted(r.rows for r in h.log.recent("iris", limit=100)) == sorted(ROWS)
    one = unbatched(h, tmp_path)
    for part, response in zip(parts, got, strict=True):
        alone = outputs(one.service.infer("iris", None, fp32(part)))
        mine = outputs(response)
        assert mine["probabilities"].shape == (len(part), 3)
        np.testing.assert_array_equal(mine["label"], alone["label"])
        np.testing.assert_allclose(mine["probabilities"], alone["probabilities"], atol=1e-6)


def test_every_datatype_is_cut_back_exactly(db, tmp_path) -> None:
    h = batching(db, tmp_path, size=6)
    h.register("mixed", write_mixed(tmp_path))

    def request(i: int) -> InferRequest:
        n = i + 1
        return InferRequest(
            inputs=[
                {"name": "ids", "shape": [n, 3], "datatype": "INT64", "data": [i] * 3 * n},
                {"name": "half", "shape": [n, 2], "datatype": "FP16", "data": [i / 2] * 2 * n},
                {"name": "mask", "shape": [n], "datatype": "BOOL", "data": [i % 2 == 0] * n},
            ]
        )

    got = together(3, lambda i: h.service.infer("mixed", None, request(i)))  # 1+2+3 rows
    assert h.service.batching.batchers.batches == 1
    for i, response in enumerate(got):
        out = outputs(response)
        n = i + 1
        np.testing.assert_array_equal(out["ids_plus"], np.full((n, 3), i + 1))
        np.testing.assert_array_equal(out["half_twice"], np.full((n, 2), float(i)))
        np.testing.assert_array_equal(out["mask_not"], np.full(n, i % 2 == 1))


def test_calls_of_other_shapes_or_outputs_never_share_a_run(db, tmp_path) -> None:
    h = batching(db, tmp_path, size=2)
    h.register("iris", write_classifier(tmp_path))
    x = iris()[0][:1]
    requests = [
        fp32(x),
        fp32(x),
        fp32(x, outputs=[{"name": "label"}]),
        fp32(x, outputs=[{"name": "label"}]),
    ]
    got = together(4, lambda i: h.service.infer("iris", None, requests[i]))
    assert [len(r.outputs) for r in got] == [2, 2, 1, 1]
    assert h.service.batching.batchers.batches == 2  # one run per outputs asked


def test_one_callers_bad_input_fails_only_that_caller(db, tmp_path) -> None:
    h = batching(db, tmp_path, size=3)
    h.register("iris", write_classifier(tmp_path))
    x = iris()[0]
    requests = [fp32(x[:1]), fp32(np.ones((1, 5), np.float32)), fp32(x[1:2]), fp32(x[2:3])]
    got = together(4, lambda i: h.service.infer("iris", None, requests[i]))
    assert isinstance(got[1], InferenceInputError) and got[1].field == "X"
    for i in (0, 2, 3):
        assert outputs(got[i])["label"].shape == (1,)
    assert h.service.batching.batchers.batches == 1


def _write(tmp: Path, name: str, x_shape: list, y_shape: list, op: str) -> Path:
    import onnx
    from onnx import TensorProto, helper

    node = (  # "unique": the distinct rows of the whole batch, as many as there are
        helper.make_node("Unique", ["X"], ["Y"], axis=0, sorted=1)
        if op == "unique"
        else helper.make_node("Relu", ["X"], ["Y"])
    )
    graph = helper.make_graph(
        [node],
        name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, y_shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def test_a_model_without_a_batch_dimension_is_never_batched(db, tmp_path) -> None:
    h = batching(db, tmp_path, size=4)
    h.register("fixed", _write(tmp_path, "fixed", [1, 4], [1, 4], "relu"))
    x = np.array([[1, -2, 3, -4]], np.float32)
    started = time.perf_counter()
    got = together(4, lambda i: h.service.infer("fixed", None, fp32(x * i)))
    assert time.perf_counter() - started < 2.5  # nobody waited for company
    assert h.service.batching.batchers.batches == 0
    for i, response in enumerate(got):
        np.testing.assert_array_equal(outputs(response)["Y"], np.maximum(x * i, 0))


def test_outputs_that_are_not_row_wise_give_each_caller_its_unbatched_answer(
    db, tmp_path, caplog
) -> None:
    # Declared [?, 4] -> [?, 4], so only a run can tell: four equal rows give one.
    h = batching(db, tmp_path, size=4)
    h.register("distinct", _write(tmp_path, "distinct", [None, 4], [None, 4], "unique"))
    parts = [np.full((1, 4), 2.0, np.float32) for _ in range(4)]
    with caplog.at_level(logging.WARNING, logger="shared.inference.dynamic_batching"):
        got = together(4, lambda i: h.service.infer("distinct", None, fp32(parts[i])))
        for part, response in zip(parts, got, strict=True):
            np.testing.assert_array_equal(outputs(response)["Y"], part)  # its own row
        assert "not one row per input row" in caplog.text
        # The version is not batched again: later callers run alone at once.
        before = h.service.batching.batchers.batches
        started = time.perf_counter()
        together(4, lambda i: h.service.infer("distinct", None, fp32(parts[i])))
        assert time.perf_counter() - started < 2.5
        assert h.service.batching.batchers.batches == before
    assert caplog.text.count("not one row per input row") == 1


def test_a_models_registration_overrides_the_settings(db, tmp_path) -> None:
    x = iris()[0][:1]
    # Batching on in the settings, off for this model.
    h = batching(db, tmp_path, size=4)
    h.register("solo", write_classifier(tmp_path), options={"batch_max_size": "1"})
    together(4, lambda i: h.service.infer("solo", None, fp32(x)))
    assert h.service.batching.batchers.batches == 0
    # Off in the settings (no limits), on for this model with its own size and delay.
    off = build_harness(db, tmp_path / "off")
    off.register(
        "grouped",
        write_classifier(tmp_path, "grouped.onnx"),
        options={"batch_max_size": "4", "batch_max_delay_ms": "5000"},
    )
    together(4, lambda i: off.service.infer("grouped", None, fp32(x)))
    assert off.service.batching.batchers.batches == 1


@pytest.mark.parametrize(
    ("inputs", "outputs_", "expected"),
    [
        ([("X", ["N", 4])], [("Y", ["N", 3])], True),
        ([("X", [-1, 4])], [("Y", [-1])], True),
        ([("X", ["N", 4])], [("Y", None)], True),  # unknown rank: checked on each run
        ([("X", [1, 4])], [("Y", [1, 3])], False),  # a fixed first dimension
        ([("X", ["N", 4])], [("Y", [1, 3])], False),
        ([("X", ["N", 4])], [("Y", ["M", 3])], False),  # another symbol
        ([("X", ["N", 4]), ("Z", ["M", 2])], [("Y", ["N"])], False),
        ([("X", [])], [("Y", [])], False),  # scalars
        ([("X", None)], [("Y", ["N"])], False),
    ],
)
def test_the_batch_dimension_is_read_from_the_declared_shapes(inputs, outputs_, expected) -> None:
    def spec(name: str, shape: list | None) -> TensorSpec:
        return TensorSpec(name, "FP32", None if shape is None else tuple(shape))

    got = has_batch_dimension([spec(*i) for i in inputs], [spec(*o) for o in outputs_])
    assert got is expected
