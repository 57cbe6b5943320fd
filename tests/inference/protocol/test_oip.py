"""Open Inference Protocol decoding and encoding: every refusal names the input and why."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from shared.inference.protocol.types import (
    POOL_MIN_ELEMENTS,
    InferRequest,
    InferResponse,
    InputSpecs,
    ResponseOutput,
    TensorSpec,
    built,
    decode_inputs,
    encode_outputs,
    first_confidence,
    model_metadata,
    row_confidence,
)
from shared.registry.errors import InferenceInputError
from shared.vectors.pool import BufferPool

SPECS = (
    TensorSpec("X", "FP32", (-1, 4)),
    TensorSpec("ids", "INT64", ("batch", 3)),
    TensorSpec("flag", "BOOL", ("batch",)),
)


def tensor(name: str, shape: list[int], datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def good_inputs() -> list[dict[str, Any]]:
    return [
        tensor("X", [2, 4], "FP32", [1, 2, 3, 4, 5, 6, 7, 8]),
        tensor("ids", [2, 3], "INT64", [[1, 2, 3], [4, 5, 6]]),
        tensor("flag", [2], "BOOL", [True, False]),
    ]


def decode(inputs: list[dict[str, Any]], specs=SPECS, max_elements: int = 1000, pool=None):
    return decode_inputs(InferRequest(inputs=inputs), specs, max_elements, pool)


def refusal(inputs: list[dict[str, Any]], specs=SPECS, max_elements: int = 1000):
    with pytest.raises(InferenceInputError) as err:
        decode(inputs, specs, max_elements)
    return err.value


def test_good_request_decodes_to_model_dtypes_and_shapes() -> None:
    feeds = decode(good_inputs())
    assert {k: (v.dtype.name, v.shape) for k, v in feeds.items()} == {
        "X": ("float32", (2, 4)),
        "ids": ("int64", (2, 3)),
        "flag": ("bool", (2,)),
    }
    np.testing.assert_array_equal(feeds["ids"], [[1, 2, 3], [4, 5, 6]])


def test_nested_and_flat_data_are_the_same() -> None:
    flat = decode(good_inputs())
    nested_inputs = good_inputs()
    nested_inputs[0]["data"] = [[1, 2, 3, 4], [5, 6, 7, 8]]
    nested_inputs[1]["data"] = [1, 2, 3, 4, 5, 6]
    nested = decode(nested_inputs)
    for name in flat:
        np.testing.assert_array_equal(flat[name], nested[name])


def test_unknown_input_is_named() -> None:
    inputs = [*good_inputs(), tensor("extra", [1], "FP32", [1.0])]
    err = refusal(inputs)
    assert err.field == "extra" and "'extra' is not an input of this model" in err.reason
    assert "'X'" in err.reason  # and what the model does take


def test_missing_input_is_named() -> None:
    err = refusal(good_inputs()[:2])
    assert err.field == "flag" and "'flag' is missing" in err.reason


def test_duplicate_input_is_named() -> None:
    err = refusal([*good_inputs(), good_inputs()[0]])
    assert err.field == "X" and "twice" in err.reason


def test_wrong_datatype() -> None:
    inputs = good_inputs()
    inputs[0]["datatype"] = "FP64"
    err = refusal(inputs)
    assert err.reason == "input 'X': datatype FP64 does not match the model's FP32"


def test_wrong_element_count() -> None:
    inputs = good_inputs()
    inputs[0]["data"] = [1, 2, 3, 4, 5, 6, 7]
    err = refusal(inputs)
    assert err.field == "X" and "7 element(s), shape [2, 4] needs 8" in err.reason


def test_rank_mismatch() -> None:
    inputs = good_inputs()
    inputs[0]["shape"] = [8]
    err = refusal(inputs)
    assert err.reason == "input 'X': shape [8] has 1 dimension(s), the model's [-1, 4] has 2"


def test_fixed_dim_mismatch() -> None:
    inputs = good_inputs()
    inputs[0]["shape"] = [2, 3]
    inputs[0]["data"] = [1, 2, 3, 4, 5, 6]
    err = refusal(inputs)
    assert err.reason == "input 'X': shape [2, 3] does not match the model's [-1, 4] at dim 1"


def test_symbolic_dims_accept_any_size() -> None:
    inputs = good_inputs()
    inputs[0]["shape"], inputs[0]["data"] = [0, 4], []
    inputs[1]["shape"], inputs[1]["data"] = [5, 3], list(range(15))
    feeds = decode(inputs)
    assert feeds["X"].shape == (0, 4) and feeds["ids"].shape == (5, 3)


def test_ragged_nested_data() -> None:
    inputs = good_inputs()
    inputs[1]["data"] = [[1, 2, 3], [4, 5]]
    err = refusal(inputs)
    assert err.field == "ids" and "ragged" in err.reason


@pytest.mark.parametrize(
    ("index", "data", "needle"),
    [
        (0, ["a", "b", "c", "d", "e", "f", "g", "h"], "FP32 data must be numbers, got strings"),
        (0, [True] * 8, "FP32 data must be numbers, got booleans"),
        (0, [1, 2, 3, 4, 5, 6, 7, None], "FP32 data must be numbers, got mixed"),
        (0, [1e39] + [0] * 7, "out of range for FP32"),
        (1, [1.5, 2, 3, 4, 5, 6], "INT64 data must be integers, got non-integer numbers"),
        (1, [math.nan, 2, 3, 4, 5, 6], "INT64 data must be integers"),
        (1, [2**64] + [0] * 5, "INT64 data must be integers, got mixed"),
        (1, [2**63] + [0] * 5, "beyond the 64-bit range"),
        (1, [2**63 + i for i in range(6)], "value 9223372036854775813 does not fit INT64"),
        (2, [1, 0], "BOOL data must be booleans, got integers"),
    ],
)
def test_bad_values_are_named(index: int, data: list[Any], needle: str) -> None:
    inputs = good_inputs()
    inputs[index]["data"] = data
    err = refusal(inputs)
    assert err.field == inputs[index]["name"]
    assert err.reason.startswith(f"input {inputs[index]['name']!r}: ")
    assert needle in err.reason


def test_integer_range_of_narrow_types() -> None:
    specs = (TensorSpec("u", "UINT8", (3,)), TensorSpec("h", "FP16", (2,)))
    ok = decode([tensor("u", [3], "UINT8", [0, 128, 255]), tensor("h", [2], "FP16", [1, 2])], specs)
    assert ok["u"].dtype == np.uint8 and ok["h"].dtype == np.float16
    err = refusal([tensor("u", [3], "UINT8", [0, 256, 1]), tensor("h", [2], "FP16", [1, 2])], specs)
    assert err.reason == "input 'u': value 256 does not fit UINT8 (0..255)"
    err = refusal([tensor("u", [3], "UINT8", [-1, 2, 1]), tensor("h", [2], "FP16", [1, 2])], specs)
    assert "value -1 does not fit UINT8" in err.reason
    err = refusal(
        [tensor("u", [3], "UINT8", [1, 2, 3]), tensor("h", [2], "FP16", [1, 70000])], specs
    )
    assert err.field == "h" and "out of range for FP16" in err.reason


def test_nan_and_inf_are_allowed_for_floats() -> None:
    inputs = good_inputs()
    inputs[0]["data"] = [math.nan, math.inf, -math.inf, 1, 2, 3, 4, 5]
    x = decode(inputs)["X"]
    assert math.isnan(x[0, 0]) and x[0, 1] == math.inf and x[0, 2] == -math.inf


def test_bytes_inputs_become_object_strings() -> None:
    specs = (TensorSpec("text", "BYTES", (-1,)),)
    feeds = decode([tensor("text", [2], "BYTES", ["a", "bc"])], specs)
    assert feeds["text"].dtype == object and feeds["text"].tolist() == ["a", "bc"]


def test_element_limit_is_per_request() -> None:
    err = refusal(good_inputs(), max_elements=10)  # X has 8, ids brings it to 14
    assert "more than 10 elements" in err.reason and err.field == "ids"


def test_request_shape_is_validated_by_the_wire_model() -> None:
    with pytest.raises(ValidationError):
        InferRequest(inputs=[tensor("X", [-1, 4], "FP32", [])])
    with pytest.raises(ValidationError):
        InferRequest(inputs=[])


def large_inputs() -> list[dict[str, Any]]:
    """good_inputs with an FP32 input big enough to come from the pool."""
    rows = POOL_MIN_ELEMENTS // 4
    inputs = good_inputs()
    inputs[0] = tensor("X", [rows, 4], "FP32", list(range(rows * 4)))
    inputs[1] = tensor("ids", [rows, 3], "INT64", [1, 2, 3] * rows)
    inputs[2] = tensor("flag", [rows], "BOOL", [True] * rows)
    return inputs


def test_large_fp32_inputs_come_from_the_pool_and_go_back() -> None:
    pool = BufferPool()
    feeds = decode(large_inputs(), pool=pool, max_elements=10 * POOL_MIN_ELEMENTS)
    assert pool.stats().rents == 1  # only the FP32 input is pooled
    expected = np.arange(POOL_MIN_ELEMENTS, dtype=np.float32).reshape(-1, 4)
    np.testing.assert_array_equal(feeds["X"], expected)
    feeds.release()
    assert pool.stats().returns == 1
    again = decode(large_inputs(), pool=pool, max_elements=10 * POOL_MIN_ELEMENTS)
    assert pool.stats().hits == 1
    again.release()


def test_small_inputs_skip_the_pool() -> None:
    """A few bytes are cheaper to allocate than to rent: the pool is not asked."""
    pool = BufferPool()
    feeds = decode(good_inputs(), pool=pool)
    np.testing.assert_array_equal(feeds["X"], np.arange(1, 9, dtype=np.float32).reshape(2, 4))
    assert feeds["X"].dtype == np.float32 and feeds["X"].flags.c_contiguous
    feeds.release()
    assert pool.stats().rents == 0


def test_a_refused_request_returns_its_buffers() -> None:
    pool = BufferPool()
    inputs = large_inputs()
    inputs[2]["data"] = [1, 0] * (POOL_MIN_ELEMENTS // 8)
    with pytest.raises(InferenceInputError):
        decode(inputs, pool=pool, max_elements=10 * POOL_MIN_ELEMENTS)
    assert pool.stats().returns == pool.stats().rents == 1


# -- encoding ----------------------------------------------------------------------------


def test_probabilities_give_the_row_max_as_confidence() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.05, 0.15, 0.8]], np.float32)
    label = np.array([0, 2], np.int64)
    outs = encode_outputs(["label", "probabilities"], [label, probs])
    assert [(o.name, o.datatype, o.shape) for o in outs] == [
        ("label", "INT64", [2]),
        ("probabilities", "FP32", [2, 3]),
    ]
    assert outs[0].parameters is None  # labels pass through
    assert outs[1].parameters == {"confidence": probs.max(axis=1).astype(np.float64).tolist()}
    assert first_confidence(outs) == outs[1].parameters["confidence"]


def test_logits_next_to_a_label_give_the_max_softmax() -> None:
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]], np.float32)
    outs = encode_outputs(["label", "scores"], [np.array([0, 2]), logits])
    x = logits.astype(np.float64)
    soft = np.exp(x - x.max(1, keepdims=True))
    expected = (soft / soft.sum(1, keepdims=True)).max(1)
    np.testing.assert_allclose(outs[1].parameters["confidence"], expected, rtol=1e-12)
    # a logits-named output alone is classifier-like too
    (alone,) = encode_outputs(["logits"], [logits])
    assert alone.parameters is not None


def test_regression_and_embeddings_get_no_confidence() -> None:
    reg = np.array([[1.5], [2.5]], np.float32)
    emb = np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32)
    outs = encode_outputs(["variable", "embedding"], [reg, emb])
    assert all(o.parameters is None for o in outs)
    assert first_confidence(outs) is None
    assert row_confidence(np.zeros((2, 3, 4), np.float32), True) is None


def test_response_serialises_flat_lists() -> None:
    hidden = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    flags = np.array([True, False])
    outs = encode_outputs(["hidden", "flags"], [hidden, flags])
    response = InferResponse(model_name="m", model_version="1", id="r1", outputs=outs)
    body = json.loads(response.model_dump_json())
    assert body["outputs"][0] == {
        "name": "hidden",
        "shape": [2, 3, 4],
        "datatype": "FP32",
        "data": [float(v) for v in range(24)],
        "parameters": None,
    }
    assert body["outputs"][1]["data"] == [True, False]
    assert body["outputs"][1]["datatype"] == "BOOL"
    assert response.model_dump()["outputs"][0]["data"] == [float(v) for v in range(24)]


def test_metadata_uses_minus_one_for_variable_dims() -> None:
    meta = model_metadata(
        "m",
        ["1", "2"],
        SPECS,
        (
            TensorSpec("y", "FP32", ("batch", 3)),
            TensorSpec("zip", "seq(map(int64,tensor(float)))", None, False),
        ),
    )
    assert meta == {
        "name": "m",
        "versions": ["1", "2"],
        "platform": "onnx_onnxv1",
        "inputs": [
            {"name": "X", "datatype": "FP32", "shape": [-1, 4]},
            {"name": "ids", "datatype": "INT64", "shape": [-1, 3]},
            {"name": "flag", "datatype": "BOOL", "shape": [-1]},
        ],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}],
    }


def test_fp64_refuses_strings() -> None:
    specs = (TensorSpec("d", "FP64", (-1,)),)
    err = refusal([tensor("d", [1], "FP64", ["x"])], specs)
    assert err.reason == "input 'd': FP64 data must be numbers, got strings"


# -- the small-size paths agree with the general ones ------------------------------------


def test_built_is_model_construct() -> None:
    """The hot path's constructor makes the instance model_construct makes: same fields,
    fields set, extras and private state; setting a field and serialising behave alike."""
    values = {
        "name": "p",
        "shape": [1, 3],
        "datatype": "FP32",
        "data": np.array([0.1, 0.7, 0.2], np.float32),
        "parameters": {"confidence": [0.7]},
    }
    fast, slow = built(ResponseOutput, dict(values)), ResponseOutput.model_construct(**values)
    assert fast == slow and type(fast) is ResponseOutput
    assert fast.model_fields_set == slow.model_fields_set == set(values)
    assert (fast.__pydantic_extra__, fast.__pydantic_private__) == (None, None)
    assert fast.model_dump_json() == slow.model_dump_json()
    fast.parameters = {"binary_data_size": 12}  # what the binary extension does
    slow.parameters = {"binary_data_size": 12}
    assert fast.model_dump_json(exclude_none=True) == slow.model_dump_json(exclude_none=True)
    response = {
        "model_name": "m",
        "model_version": "1",
        "id": "r",
        "parameters": None,
        "outputs": [fast],
    }
    assert built(InferResponse, dict(response)) == InferResponse.model_construct(**response)


@pytest.mark.parametrize("rows", [1, 2, 21, 22, 40])  # 3 classes: <= 64 elements up to 21
@pytest.mark.parametrize("kind", ["probabilities", "logits", "off by 0.01", "nan", "inf"])
def test_small_outputs_get_the_confidence_numpy_gives(rows: int, kind: str) -> None:
    rng = np.random.default_rng(rows)
    x = rng.random((rows, 3)).astype(np.float32)
    if kind == "probabilities":
        x /= x.sum(axis=1, keepdims=True)
    elif kind == "logits":
        x = (x * 8 - 4).astype(np.float32)
    elif kind == "off by 0.01":
        x /= x.sum(axis=1, keepdims=True)
        x[-1] *= 1.01
    else:
        x[rows // 2, 1] = np.nan if kind == "nan" else np.inf
    for classifier_like, names in ((True, ["label", "probs"]), (False, ["out"])):
        values = [np.zeros(rows, np.int64), x] if classifier_like else [x]
        got = encode_outputs(names, values)[-1].parameters
        want = row_confidence(x, classifier_like)
        if want is None:
            assert got is None
        else:
            assert got == {"confidence": want.tolist()}


@pytest.mark.parametrize("size", [8, 200])  # Python floats below SMALL_INPUT, numpy above
@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ([math.nan, 1e39], "value 1e+39"),  # a NaN first hides nothing
        ([1e39, math.nan], "value 1e+39"),
        ([math.nan, math.inf, -math.inf, 3.0e38], None),
        ([-1e39, 1.0], "value -1e+39"),
        ([3.4e38, -3.4e38], None),
    ],
)
def test_fp32_range_checks_agree_at_any_size(size: int, values: list, refused: str | None) -> None:
    data = values + [0.0] * (size - len(values))
    specs = (TensorSpec("v", "FP32", (-1,)),)
    inputs = [tensor("v", [size], "FP32", data)]
    if refused is None:
        out = decode(inputs, specs)["v"]
        np.testing.assert_array_equal(out, np.array(data, dtype=np.float32))
    else:
        err = refusal(inputs, specs)
        assert err.reason == f"input 'v': {refused} is out of range for FP32 (max 3.40282e+38)"


def test_input_specs_made_once_decode_the_same_and_name_the_same_inputs() -> None:
    plan = InputSpecs(SPECS)
    a, b = decode(good_inputs()), decode(good_inputs(), plan)
    assert {k: v.tolist() for k, v in a.items()} == {k: v.tolist() for k, v in b.items()}
    for broken in (good_inputs()[:2], [*good_inputs(), tensor("nope", [1], "FP32", [1])]):
        assert refusal(broken).reason == refusal(broken, plan).reason
    wrong_rank = good_inputs()
    wrong_rank[0] = tensor("X", [8], "FP32", list(range(8)))
    assert refusal(wrong_rank, plan).reason == (
        "input 'X': shape [8] has 1 dimension(s), the model's [-1, 4] has 2"
    )
