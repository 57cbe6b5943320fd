"""Dispatch of the vector API's operations onto the kernels (shapes, modes, errors)."""

import numpy as np
import pytest

from shared.vectors import ops as vector_ops
from shared.vectors import scalar
from shared.vectors.errors import DimensionMismatchError, NonFiniteError, VectorFormatError

rng = np.random.default_rng(7)
A = rng.standard_normal((5, 8)).astype(np.float32)
B = rng.standard_normal((3, 8)).astype(np.float32)
v = A[0]


def f32b(x: np.ndarray) -> bytes:
    return x.astype("<f4").tobytes()


def test_vector_with_vector_is_one_number_matching_the_scalar_twin() -> None:
    got = vector_ops.apply("cosine", v, B[0])
    assert isinstance(got, float)
    assert got == pytest.approx(scalar.cosine_similarity(f32b(v), f32b(B[0])), abs=1e-6)


@pytest.mark.parametrize("op", ["dot", "cosine", "euclidean"])
def test_vector_against_matrix_in_either_order_gives_one_score_per_row(op: str) -> None:
    left = vector_ops.apply(op, v, B)
    right = vector_ops.apply(op, B, v)
    assert left.shape == (3,) and np.allclose(left, right, atol=1e-5)
    one = [vector_ops.apply(op, v, row) for row in B]
    assert np.allclose(left, one, atol=1e-4)


def test_cross_gives_every_pair_and_pairwise_needs_equal_shapes() -> None:
    cross = vector_ops.apply("dot", A, B, mode="cross")
    assert cross.shape == (5, 3)
    assert cross[4, 2] == pytest.approx(float(A[4] @ B[2]), rel=1e-5)
    with pytest.raises(DimensionMismatchError, match="use mode 'cross'"):
        vector_ops.apply("dot", A, B, mode="pairwise")
    pair = vector_ops.apply("dot", A, A[::-1].copy())
    assert pair.shape == (5,) and pair[0] == pytest.approx(float(A[0] @ A[4]), rel=1e-5)


def test_add_broadcasts_a_vector_over_rows_and_checks_dims() -> None:
    out = vector_ops.apply("add", B, v)
    assert np.allclose(out, B + v)
    out = vector_ops.apply("subtract", v, B)
    assert np.allclose(out, v - B)
    with pytest.raises(DimensionMismatchError, match="dimension 3 does not match a: dimension 8"):
        vector_ops.apply("add", v, np.ones(3, np.float32))
    with pytest.raises(DimensionMismatchError, match="rows"):
        vector_ops.apply("add", A, B)


@pytest.mark.parametrize(("op", "field"), [("dot", "b"), ("scale", "scalar"), ("lerp", "b")])
def test_missing_operand_names_its_field(op: str, field: str) -> None:
    with pytest.raises(VectorFormatError) as err:
        vector_ops.apply(op, v)
    assert err.value.field == field and f"required for {op}" in err.value.message


def test_lerp_needs_t_and_interpolates() -> None:
    with pytest.raises(VectorFormatError, match="t: required"):
        vector_ops.apply("lerp", v, B[0])
    mid = vector_ops.apply("lerp", v, B[0], t=0.5)
    assert np.allclose(mid, (v + B[0]) / 2, atol=1e-6)


def test_unary_ops_keep_shapes_and_argmax_of_empty_is_none() -> None:
    assert vector_ops.apply("norm", A).shape == (5,)
    assert np.allclose(np.linalg.norm(vector_ops.apply("normalize", A), axis=1), 1, atol=1e-6)
    assert np.allclose(vector_ops.apply("softmax", A).sum(axis=1), 1, atol=1e-6)
    assert list(vector_ops.apply("argmax", A)) == list(A.argmax(axis=1))
    assert vector_ops.apply("argmax", np.zeros(0, np.float32)) is None


def test_overflow_is_refused_instead_of_emitting_infinity() -> None:
    big = np.full(4, 3e38, np.float32)
    with pytest.raises(NonFiniteError, match="result: overflows float32"):
        vector_ops.apply("add", big, big)
