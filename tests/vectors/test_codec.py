"""Wire formats: round trips, and every refusal names its field and reason."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from shared.vectors import codec
from shared.vectors.errors import (
    DimensionMismatchError,
    LimitExceededError,
    NonFiniteError,
    VectorFormatError,
)
from shared.vectors.pool import BufferPool


def b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.asarray(arr, "<f4").tobytes()).decode()


def test_vector_json_and_b64_decode_to_the_same_float32(rng: np.random.Generator) -> None:
    v = rng.standard_normal(384).astype(np.float32)
    from_json = codec.decode_vector(json.loads(json.dumps(v.tolist())), "a", max_dim=384)
    from_b64 = codec.decode_vector({"b64": b64(v)}, "a", max_dim=384)
    from_raw = codec.decode_vector(v.astype("<f4").tobytes(), "a", max_dim=384)
    for got in (from_json, from_b64, from_raw):
        assert got.dtype == np.float32 and got.shape == (384,) and np.array_equal(got, v)
    assert codec.decode_vector([1, 2, 3], "a", max_dim=3).tolist() == [1.0, 2.0, 3.0]


def test_vector_encode_round_trips(rng: np.random.Generator) -> None:
    v = rng.standard_normal(10).astype(np.float32)
    for fmt in ("json", "b64"):
        wire = json.loads(json.dumps(codec.encode_vector(v, fmt)))
        assert np.array_equal(codec.decode_vector(wire, "v", max_dim=10), v)


def test_matrix_round_trips(rng: np.random.Generator) -> None:
    m = rng.standard_normal((5, 7)).astype(np.float32)
    for fmt in ("json", "b64"):
        wire = json.loads(json.dumps(codec.encode_matrix(m, fmt)))
        got = codec.decode_matrix(wire, "vectors", max_dim=7, max_rows=5)
        assert got.dtype == np.float32 and np.array_equal(got, m)


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        ([1.0, True], VectorFormatError, "expected numbers, got bool"),
        ([1.0, "2"], VectorFormatError, "expected numbers, got str"),
        ([1.0, None], VectorFormatError, "expected numbers, got NoneType"),
        ("1,2", VectorFormatError, "got str"),
        (True, VectorFormatError, "got bool"),
        ([], VectorFormatError, "vector is empty"),
        ([1.0, float("nan")], NonFiniteError, "index 1 is NaN"),
        ([float("inf")], NonFiniteError, "index 0"),
        ([1e39], NonFiniteError, "float32 range"),
        ([10**400], NonFiniteError, "float32 range"),
        ([0.0] * 5, LimitExceededError, "5 dimensions exceed the limit 4"),
        ({"b64": "AAAA"}, VectorFormatError, "byte length 3 is not a multiple of 4"),
        ({"b64": "!!!!"}, VectorFormatError, "not valid base64"),
        ({"b64": 5}, VectorFormatError, "b64 must be a string"),
        ({"b64": "", "x": 1}, VectorFormatError, '{"b64"'),
        ({"b64": b64(np.zeros(50))}, LimitExceededError, "limit"),
        ({"b64": b64(np.array([np.nan]))}, NonFiniteError, "NaN"),
        (b"\x00\x00\x00", VectorFormatError, "byte length 3"),
    ],
)
def test_vector_refusals_name_field_and_reason(value: object, error: type, text: str) -> None:
    with pytest.raises(error) as err:
        codec.decode_vector(value, "a", max_dim=4)
    assert err.value.field == "a"
    assert text in str(err.value) and str(err.value).startswith("a: ")


def test_empty_vector_allowed_on_request() -> None:
    assert codec.decode_vector([], "v", max_dim=4, allow_empty=True).shape == (0,)


@pytest.mark.parametrize(
    ("value", "error", "field", "text"),
    [
        ([], VectorFormatError, "vectors", "no rows"),
        ([[]], VectorFormatError, "vectors", "rows are empty"),
        (
            [[1, 2], [3]],
            DimensionMismatchError,
            "vectors[1]",
            "dimension 1 does not match vectors[0]: dimension 2",
        ),
        ([[1, 2], [3, 4], [5, 6, 7]], DimensionMismatchError, "vectors[2]", "dimension 3"),
        ([[1, 2], 3], VectorFormatError, "vectors[1]", "got int"),
        ([[1, 2], [3, False]], VectorFormatError, "vectors[1]", "got bool"),
        ([[1, 2], [3, "x"]], VectorFormatError, "vectors[1]", "got str"),
        ([[1, 2], [3, float("nan")]], NonFiniteError, "vectors[1]", "index 1"),
        ([[0.0] * 5], LimitExceededError, "vectors", "5 dimensions exceed the limit 4"),
        ([[0.0]] * 4, LimitExceededError, "vectors", "4 rows exceed the limit 3"),
        (
            {"b64": b64(np.zeros(6)), "shape": [2, 2]},
            VectorFormatError,
            "vectors",
            "byte length 24 does not match shape [2, 2]",
        ),
        (
            {"b64": b64(np.zeros(4)), "shape": [2]},
            VectorFormatError,
            "vectors.shape",
            "[rows, dim]",
        ),
        (
            {"b64": b64(np.zeros(4)), "shape": [2, True]},
            VectorFormatError,
            "vectors.shape",
            "integers",
        ),
        ({"b64": b64(np.zeros(40)), "shape": [10, 4]}, LimitExceededError, "vectors", "10 rows"),
        ({"b64": b64(np.zeros(4))}, VectorFormatError, "vectors", "shape"),
        ("x", VectorFormatError, "vectors", "got str"),
    ],
)
def test_matrix_refusals(value: object, error: type, field: str, text: str) -> None:
    with pytest.raises(error) as err:
        codec.decode_matrix(value, "vectors", max_dim=4, max_rows=3)
    assert err.value.field == field
    assert text in err.value.message


def test_decode_into_pooled_buffer(rng: np.random.Generator) -> None:
    pool = BufferPool()
    m = rng.standard_normal((6, 3)).astype(np.float32)
    got = codec.decode_matrix(m.tolist(), "vectors", max_dim=3, max_rows=6, pool=pool)
    assert np.array_equal(got, m)
    pool.give_back(got)
    v = codec.decode_vector({"b64": b64(m[0])}, "v", max_dim=3, pool=pool)
    assert np.array_equal(v, m[0])
    pool.give_back(v)
    with pytest.raises(NonFiniteError):
        codec.decode_vector([1.0, float("inf")], "v", max_dim=3, pool=pool)
    s = pool.stats()
    assert s.rents == s.returns == 3  # the refused one went back too
