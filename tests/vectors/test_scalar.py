"""The SQL scalar logic against float64 numpy references computed here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.vectors import scalar
from shared.vectors.errors import DimensionMismatchError, VectorFormatError
from tests.support.vectors import blob, unblob


def test_bytes_round_trip_is_float32_little_endian(rng: np.random.Generator) -> None:
    v = rng.standard_normal(17).astype(np.float32)
    raw = scalar.to_bytes(v.tolist())
    assert raw == v.astype("<f4").tobytes()
    assert scalar.from_bytes(raw) == v.tolist()
    assert scalar.from_bytes(bytearray(raw)) == v.tolist()
    assert scalar.from_bytes(memoryview(raw)) == v.tolist()
    assert scalar.from_bytes(None) is None


@pytest.mark.parametrize("length", [1, 2, 3, 5, 7])
def test_byte_length_not_multiple_of_4_says_so(length: int) -> None:
    with pytest.raises(VectorFormatError, match=f"byte length {length} is not a multiple of 4"):
        scalar.norm(b"\x00" * length)
    with pytest.raises(VectorFormatError) as err:
        scalar.dot_product(b"\x00" * 4, b"\x00" * length)
    assert err.value.field == "b"


def test_non_bytes_refused() -> None:
    with pytest.raises(VectorFormatError, match="expected float32 bytes, got str"):
        scalar.norm("abcd")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "func",
    [
        scalar.dot_product,
        scalar.cosine_similarity,
        scalar.euclidean_distance,
        scalar.add,
        scalar.subtract,
    ],
)
def test_dimension_mismatch_raises_with_message(func) -> None:
    with pytest.raises(DimensionMismatchError) as err:
        func(blob(np.ones(4)), blob(np.ones(3)))
    assert str(err.value) == "b: dimension 3 does not match a: dimension 4"
    with pytest.raises(DimensionMismatchError):
        scalar.lerp(blob(np.ones(4)), blob(np.ones(3)), 0.5)


def test_null_in_null_out() -> None:
    v = blob(np.ones(3))
    for func in (
        scalar.dot_product,
        scalar.cosine_similarity,
        scalar.euclidean_distance,
        scalar.add,
        scalar.subtract,
    ):
        assert func(None, v) is None and func(v, None) is None
    for func in (scalar.norm, scalar.normalize, scalar.softmax, scalar.argmax):
        assert func(None) is None
    assert scalar.scale(None, 2.0) is None and scalar.scale(v, None) is None
    assert scalar.lerp(v, v, None) is None and scalar.lerp(None, v, 0.5) is None


@pytest.mark.parametrize("d", [1, 3, 384])
def test_metrics_match_float64(rng: np.random.Generator, d: int) -> None:
    a = rng.standard_normal(d).astype(np.float32)
    b = rng.standard_normal(d).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert scalar.dot_product(blob(a), blob(b)) == pytest.approx(a64 @ b64, rel=1e-12, abs=1e-12)
    cos = a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64))
    assert scalar.cosine_similarity(blob(a), blob(b)) == pytest.approx(cos, rel=1e-12)
    dist = np.linalg.norm(a64 - b64)
    assert scalar.euclidean_distance(blob(a), blob(b)) == pytest.approx(dist, rel=1e-12)
    assert scalar.norm(blob(a)) == pytest.approx(np.linalg.norm(a64), rel=1e-12)


def test_cosine_is_zero_when_a_norm_is_zero() -> None:
    zero, one = blob(np.zeros(4)), blob(np.ones(4))
    assert scalar.cosine_similarity(zero, one) == 0.0
    assert scalar.cosine_similarity(one, zero) == 0.0
    assert scalar.cosine_similarity(zero, zero) == 0.0


def test_elementwise_match_float64_rounded_to_float32(rng: np.random.Generator) -> None:
    a = rng.standard_normal(33).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert np.array_equal(unblob(scalar.add(blob(a), blob(b))), (a64 + b64).astype(np.float32))
    assert np.array_equal(unblob(scalar.subtract(blob(a), blob(b))), (a64 - b64).astype(np.float32))
    assert np.array_equal(unblob(scalar.scale(blob(a), 2.5)), (a64 * 2.5).astype(np.float32))
    assert np.array_equal(
        unblob(scalar.lerp(blob(a), blob(b), 0.25)),
        (a64 + 0.25 * (b64 - a64)).astype(np.float32),
    )
    n = unblob(scalar.normalize(blob(a)))
    assert np.allclose(n, a64 / np.linalg.norm(a64), rtol=1e-6)


def test_lerp_endpoints_and_scale_int_factor(rng: np.random.Generator) -> None:
    a = rng.standard_normal(5).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    assert scalar.lerp(blob(a), blob(b), 0) == blob(a)
    assert scalar.lerp(blob(a), blob(b), 1) == blob(b)
    assert scalar.scale(blob(a), 2) == blob(a * 2)
    with pytest.raises(VectorFormatError, match="s: expected a number, got bool"):
        scalar.scale(blob(a), True)  # type: ignore[arg-type]


def test_normalize_zero_vector_unchanged() -> None:
    assert scalar.normalize(blob(np.zeros(6))) == blob(np.zeros(6))


def test_softmax_is_max_subtracted(rng: np.random.Generator) -> None:
    v = (rng.standard_normal(10) * 3).astype(np.float32)
    v[3] = 1000.0  # exp(1000) overflows without the max subtraction
    e = np.exp(v.astype(np.float64) - v.max())
    got = unblob(scalar.softmax(blob(v)))
    assert np.allclose(got, e / e.sum(), rtol=1e-6, atol=1e-12)
    assert np.isfinite(got).all() and got.sum() == pytest.approx(1.0, abs=1e-6)
    assert scalar.softmax(b"") == b""


def test_argmax_first_of_ties_and_empty() -> None:
    v = np.array([1.0, 5.0, -2.0, 5.0], dtype=np.float32)
    assert scalar.argmax(blob(v)) == int(np.argmax(v)) == 1
    assert scalar.argmax(b"") is None


def test_centroid_and_mean_variance(rng: np.random.Generator) -> None:
    m = rng.standard_normal((50, 7)).astype(np.float32) * 10 + 1000
    c, mv = scalar.Centroid(), scalar.MeanVariance()
    for row in m:
        c.step(blob(row))
        mv.step(blob(row))
    c.step(None)  # NULL rows are skipped
    mv.step(None)
    m64 = m.astype(np.float64)
    assert np.allclose(unblob(c.finalize()), m64.mean(axis=0), rtol=1e-7)
    res = mv.finalize()
    assert res is not None and res["count"] == 50
    assert np.allclose(res["mean"], m64.mean(axis=0), rtol=1e-12)
    assert np.allclose(res["variance"], m64.var(axis=0), rtol=1e-9)


def test_aggregates_of_nothing_are_null() -> None:
    for cls in (scalar.Centroid, scalar.MeanVariance, scalar.GeometricMedian):
        agg = cls()
        agg.step(None)
        assert agg.finalize() is None


def test_aggregate_row_dimension_mismatch() -> None:
    agg = scalar.Centroid()
    agg.step(blob(np.ones(3)))
    with pytest.raises(DimensionMismatchError, match="row 2 has dimension 4"):
        agg.step(blob(np.ones(4)))


def _sum_dist(points: np.ndarray, y: np.ndarray) -> float:
    return float(np.linalg.norm(points - y, axis=1).sum())


def test_geometric_median_minimises_sum_of_distances(rng: np.random.Generator) -> None:
    pts = rng.standard_normal((40, 5))
    pts[:4] += 50  # outliers pull the centroid, not the median
    pts = pts.astype(np.float32).astype(np.float64)
    gm = scalar.GeometricMedian()
    for p in pts:
        gm.step(blob(p))
    y = unblob(gm.finalize()).astype(np.float64)
    best = _sum_dist(pts, y)
    assert best < _sum_dist(pts, pts.mean(axis=0))
    for _ in range(50):
        assert best <= _sum_dist(pts, y + rng.standard_normal(5) * 1e-3) + 1e-6


def test_geometric_median_when_the_estimate_lands_on_a_point() -> None:
    # Centroid of a symmetric star is the centre point itself: plain Weiszfeld divides by 0.
    star = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float64)
    assert scalar.geometric_median_of(star.tolist()) == [0.0, 0.0]
    # Three points at the origin outweigh two unit pulls: the median is a data point.
    heavy = [[0.0, 0.0]] * 3 + [[1.0, 0.0], [0.0, 1.0]]
    y = scalar.geometric_median_of(heavy)
    assert math.hypot(*y) < 1e-6
    pts = np.array(heavy)
    assert _sum_dist(pts, np.array(y)) <= _sum_dist(pts, np.array([0.01, 0.01]))


def test_geometric_median_single_and_identical_points() -> None:
    assert scalar.geometric_median_of([[1.0, 2.0]]) == [1.0, 2.0]
    assert scalar.geometric_median_of([[1.0, 2.0]] * 4) == [1.0, 2.0]
