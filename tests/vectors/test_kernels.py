"""SIMD kernels against their scalar twin (and float64 where the twin has no batch form).

Tolerances: float32 BLAS sums vs the twin's double sums agree within 1e-5 * |a| |b| for
dot products; element-wise results within float32 rounding (rtol 1e-6); euclidean via the
norm expansion within rtol 1e-4 (see kernels' docstring); aggregates within 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest

from shared.vectors import kernels, scalar
from shared.vectors.errors import DimensionMismatchError
from tests.support.vectors import blob, unblob

DIMS = [1, 7, 384]


def _pairs(rng: np.random.Generator, d: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random, zero and large-magnitude pairs (1e18 squared still fits in float32 for d<=8)."""
    a = rng.standard_normal(d).astype(np.float32)
    b = rng.standard_normal(d).astype(np.float32)
    big_d = min(d, 8)
    big_a = (rng.standard_normal(big_d) * 1e18).astype(np.float32)
    big_b = (rng.standard_normal(big_d) * 1e18).astype(np.float32)
    zero = np.zeros(d, np.float32)
    return [(a, b), (zero, b), (a, zero), (zero, zero), (big_a, big_b), (a, a)]


def _scale(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64)) * np.linalg.norm(b.astype(np.float64)))


@pytest.mark.parametrize("d", DIMS)
def test_one_to_one_metrics_match_scalar(rng: np.random.Generator, d: int) -> None:
    for a, b in _pairs(rng, d):
        tol = 1e-5 * _scale(a, b) + 1e-30
        assert abs(kernels.dot(a, b) - scalar.dot_product(blob(a), blob(b))) <= tol
        assert kernels.cosine(a, b) == pytest.approx(
            scalar.cosine_similarity(blob(a), blob(b)), abs=1e-5
        )
        want = scalar.euclidean_distance(blob(a), blob(b))
        assert kernels.euclidean(a, b) == pytest.approx(want, rel=1e-5, abs=1e-30)
        assert kernels.norm(a) == pytest.approx(scalar.norm(blob(a)), rel=1e-6)


@pytest.mark.parametrize("d", DIMS)
def test_elementwise_match_scalar(rng: np.random.Generator, d: int) -> None:
    for a, b in _pairs(rng, d):
        if len(a) != len(b):
            continue
        mag = float(max(np.abs(a).max(), np.abs(b).max(), 1e-30))
        close = {"rtol": 1e-6, "atol": 1e-6 * mag}
        assert np.allclose(kernels.add(a, b), unblob(scalar.add(blob(a), blob(b))), **close)
        assert np.allclose(
            kernels.subtract(a, b), unblob(scalar.subtract(blob(a), blob(b))), **close
        )
        assert np.allclose(kernels.scale(a, -1.5), unblob(scalar.scale(blob(a), -1.5)), **close)
        assert np.allclose(
            kernels.lerp(a, b, 0.3), unblob(scalar.lerp(blob(a), blob(b), 0.3)), **close
        )
        assert np.allclose(kernels.normalize(a), unblob(scalar.normalize(blob(a))), rtol=1e-6)
        assert np.allclose(
            kernels.softmax(a), unblob(scalar.softmax(blob(a))), rtol=1e-5, atol=1e-7
        )
        assert kernels.argmax(a) == scalar.argmax(blob(a))


def test_empty_vector_edges() -> None:
    empty = np.zeros(0, np.float32)
    assert kernels.argmax(empty) is None is scalar.argmax(b"")
    assert kernels.softmax(empty).size == 0
    assert kernels.norm(empty) == 0.0 == scalar.norm(b"")


@pytest.mark.parametrize("scale", [1e-20, 1e-25, 1e20, 1e25])
def test_norms_and_normalize_hold_where_float32_squares_underflow_or_overflow(
    rng: np.random.Generator, scale: float
) -> None:
    """Squares of 1e-20 are subnormal and squares of 1e20 overflow in float32; the norm
    must still match the scalar twin and normalised rows must still have unit length."""
    m = (rng.standard_normal((50, 384)) * scale).astype(np.float32)
    m[7] = rng.standard_normal(384).astype(np.float32)  # an ordinary row among them
    want = [scalar.norm(blob(row)) for row in m]
    assert np.allclose(kernels.norm(m), want, rtol=1e-6)
    assert kernels.norm(m[0]) == pytest.approx(want[0], rel=1e-6)
    unit = kernels.normalize(m)
    assert np.allclose(np.linalg.norm(unit.astype(np.float64), axis=1), 1.0, atol=1e-6)
    assert np.linalg.norm(kernels.normalize(m[0]).astype(np.float64)) == pytest.approx(1.0)
    for a, b in ((m[0], m[1]), (m[0], m[7])):
        want_cos = scalar.cosine_similarity(blob(a), blob(b))
        assert kernels.cosine(a, b) == pytest.approx(want_cos, abs=1e-6)


def test_zero_rows_stay_unchanged_when_normalised(rng: np.random.Generator) -> None:
    m = rng.standard_normal((5, 16)).astype(np.float32)
    m[2] = 0
    got = kernels.normalize(m)
    for row, g in zip(m, got, strict=True):
        assert np.allclose(g, unblob(scalar.normalize(blob(row))), rtol=1e-6)
    assert np.all(got[2] == 0)


@pytest.mark.parametrize("d", DIMS)
def test_one_to_many_cross_pairwise_match_scalar(rng: np.random.Generator, d: int) -> None:
    a = rng.standard_normal((6, d)).astype(np.float32)
    b = rng.standard_normal((9, d)).astype(np.float32)
    a[1] = 0
    b[4] = 0
    b[5] = a[0]  # an exact duplicate: the expansion must still give distance 0
    b[6] = a[2] + 1e-3  # a near duplicate
    twins = {
        "dot": scalar.dot_product,
        "cosine": scalar.cosine_similarity,
        "euclidean": scalar.euclidean_distance,
    }
    for name, twin in twins.items():
        many = getattr(kernels, f"{name}_many")
        cross = getattr(kernels, f"{name}_cross")
        pairwise = getattr(kernels, f"{name}_pairwise")
        want = np.array([[twin(blob(x), blob(y)) for y in b] for x in a])
        scale = np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None, :]
        if name == "euclidean":
            tol = 1e-4 * want + 1e-6 * np.sqrt(scale)
        elif name == "cosine":
            tol = np.full_like(want, 1e-5)
        else:
            tol = 1e-5 * scale + 1e-30
        assert np.all(np.abs(cross(a, b) - want) <= tol), name
        assert np.all(np.abs(many(a[0], b) - want[0]) <= tol[0]), name
        n = min(len(a), len(b))
        diag = np.diagonal(want[:n, :n])
        assert np.all(np.abs(pairwise(a, b[:n]) - diag) <= np.diagonal(tol[:n, :n])), name
    assert kernels.euclidean_many(a[0], b)[5] == 0.0


def test_euclidean_expansion_accuracy_vs_float64(rng: np.random.Generator) -> None:
    """Clustered data (cos ~ 0.999) is where the expansion cancels: refinement keeps 1e-4."""
    centre = rng.standard_normal(384)
    a = (centre + rng.standard_normal((20, 384)) * 0.02).astype(np.float32)
    b = (centre + rng.standard_normal((30, 384)) * 0.02).astype(np.float32)
    exact = np.linalg.norm(
        a.astype(np.float64)[:, None, :] - b.astype(np.float64)[None, :, :], axis=2
    )
    got = kernels.euclidean_cross(a, b)
    assert np.max(np.abs(got - exact) / exact) < 1e-4


@pytest.mark.parametrize("name", ["dot", "cosine", "euclidean"])
def test_dimension_mismatch_same_error_as_scalar(name: str) -> None:
    a, b = np.ones(4, np.float32), np.ones(3, np.float32)
    twin = {
        "dot": scalar.dot_product,
        "cosine": scalar.cosine_similarity,
        "euclidean": scalar.euclidean_distance,
    }[name]
    with pytest.raises(DimensionMismatchError) as want:
        twin(blob(a), blob(b))
    calls = [
        lambda: getattr(kernels, name)(a, b),
        lambda: getattr(kernels, f"{name}_many")(a, np.ones((2, 3), np.float32)),
        lambda: getattr(kernels, f"{name}_cross")(np.ones((2, 4)), np.ones((2, 3))),
        lambda: getattr(kernels, f"{name}_pairwise")(np.ones((2, 4)), np.ones((2, 3))),
    ]
    for call in calls:
        with pytest.raises(DimensionMismatchError) as got:
            call()
        assert got.value.field == want.value.field == "b"
    with pytest.raises(DimensionMismatchError, match=str(want.value)):
        getattr(kernels, name)(a, b)
    for op in (kernels.add, kernels.subtract):
        with pytest.raises(DimensionMismatchError):
            op(a, b)


def test_out_parameters_are_written_in_place(rng: np.random.Generator) -> None:
    q = rng.standard_normal(32).astype(np.float32)
    m = rng.standard_normal((50, 32)).astype(np.float32)
    out = np.empty(50, np.float32)
    for func in (kernels.dot_many, kernels.cosine_many, kernels.euclidean_many):
        assert func(q, m, out=out) is out
    cross = np.empty((50, 50), np.float32)
    assert kernels.dot_cross(m, m, out=cross) is cross
    rows = np.empty_like(m)
    assert kernels.normalize(m, out=rows) is rows
    assert kernels.softmax(m, out=rows) is rows
    assert kernels.add(m, q, out=rows) is rows
    before = m.copy()
    assert kernels.lerp(m, before * 2, 0.5, out=m) is m  # out aliasing a is handled
    assert np.allclose(m, before * 1.5, rtol=1e-6)


def test_batch_rows_match_scalar(rng: np.random.Generator) -> None:
    m = rng.standard_normal((8, 24)).astype(np.float32) * 5
    assert np.allclose(kernels.norm(m), [scalar.norm(blob(r)) for r in m], rtol=1e-6)
    assert list(kernels.argmax(m)) == [scalar.argmax(blob(r)) for r in m]
    soft = kernels.softmax(m)
    for row, got in zip(m, soft, strict=True):
        assert np.allclose(got, unblob(scalar.softmax(blob(row))), rtol=1e-5, atol=1e-8)


def _aggregate(cls: type, m: np.ndarray) -> object:
    agg = cls()
    for row in m:
        agg.step(blob(row))
    return agg.finalize()


@pytest.mark.parametrize("d", DIMS)
def test_aggregates_match_scalar(rng: np.random.Generator, d: int) -> None:
    m = (rng.standard_normal((30, d)) * 3 + 7).astype(np.float32)
    assert np.allclose(kernels.centroid(m), unblob(_aggregate(scalar.Centroid, m)), rtol=1e-6)
    mv = kernels.mean_variance(m)
    want = _aggregate(scalar.MeanVariance, m)
    assert mv is not None and isinstance(want, dict) and mv.count == want["count"] == 30
    assert np.allclose(mv.mean, want["mean"], rtol=1e-10)
    assert np.allclose(mv.variance, want["variance"], rtol=1e-8)
    gm = kernels.geometric_median(m)
    assert np.allclose(gm, unblob(_aggregate(scalar.GeometricMedian, m)), rtol=1e-5, atol=1e-5)


def test_aggregate_edges_match_scalar() -> None:
    empty = np.zeros((0, 3), np.float32)
    assert kernels.centroid(empty) is None and kernels.mean_variance(empty) is None
    assert kernels.geometric_median(empty) is None
    star = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)
    assert np.array_equal(
        kernels.geometric_median(star), unblob(_aggregate(scalar.GeometricMedian, star))
    )
    heavy = np.array([[0, 0]] * 3 + [[1, 0], [0, 1]], np.float32)
    assert np.allclose(
        kernels.geometric_median(heavy),
        unblob(_aggregate(scalar.GeometricMedian, heavy)),
        atol=1e-6,
    )


def _reference_top_k(scores: np.ndarray, k: int, largest: bool) -> np.ndarray:
    idx = np.arange(scores.size)
    order = np.lexsort((idx, -scores if largest else scores))
    return order[:k]


@pytest.mark.parametrize("largest", [True, False])
def test_top_k_sorted_with_ties_by_index(rng: np.random.Generator, largest: bool) -> None:
    scores = rng.integers(0, 20, 5000).astype(np.float32)  # many ties
    for k in (1, 10, 37, 4999, 5000, 6000):
        idx, vals = kernels.top_k(scores, k, largest=largest)
        want = _reference_top_k(scores, k, largest)
        assert np.array_equal(idx, want)
        assert np.array_equal(vals, scores[want])
    idx, vals = kernels.top_k(scores, 0)
    assert idx.size == 0 and vals.size == 0
    smooth = rng.standard_normal(10_000).astype(np.float32)
    idx, _ = kernels.top_k(smooth, 10, largest=largest)
    assert np.array_equal(idx, _reference_top_k(smooth, 10, largest))
