"""The compressed (int8) engine: its per-row intervals hold the float64 score, it stays
exact where quantisation error decides the order, and its resident part is small."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from shared.search import int8_scan, quantized
from tests.search.reference import METRICS, reference, reference_keys

#: Magnitudes of rows and queries: 1e-9 and 1e12 keep a euclidean batch's values in
#: float32, 1e-20, 1e15, 1e-36 and 1e30 take them out of its range (float64 values).
SCALES = [1.0, 1e-9, 1e12, 1e-20, 1e15, 1e-36, 1e30]


def _varied_norms(
    rng: np.random.Generator, scale: float
) -> tuple[np.ndarray, quantized.QuantizedRows, np.ndarray]:
    """Rows of very different norms (cosine divides by them), a zero row, and queries
    of which one equals a row."""
    m = rng.standard_normal((3000, 40)) * rng.uniform(0.01, 10, (3000, 1))
    m[7] = 0
    m = (m * scale).astype(np.float32)
    queries = (rng.standard_normal((5, 40)) * scale).astype(np.float32)
    queries[1] = m[3]
    return m, quantized.quantize(m), queries


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("scale", [1.0, 1e-20, 1e15])
def test_every_interval_holds_the_float64_score(
    rng: np.random.Generator, metric: str, scale: float
) -> None:
    """The bound itself, checked row by row: lo <= float64 score <= hi, with rows of
    very different norms (cosine divides by them) and a zero row."""
    m, qr, queries = _varied_norms(rng, scale)
    p = quantized._prepare_queries(qr, queries, metric)
    for qi, q in enumerate(queries):
        rows = np.arange(len(m))
        cu = (qr.codes.astype(np.int64) - quantized.LEVELS) @ p.u[qi].astype(np.int64)
        lo, hi = quantized._intervals(qr, p, np.full(len(m), qi), rows, cu.astype(np.float64))
        score = -reference_keys(m, q, metric)
        assert np.all(lo <= score) and np.all(score <= hi)


@pytest.mark.parametrize("metric", METRICS)
def test_hundreds_of_rows_inside_the_bound_of_the_kth_score_are_ordered_exactly(
    rng: np.random.Generator, metric: str
) -> None:
    """Rows a fraction of a quantisation step apart: their int8 codes cannot order them
    (the int8 ranking disagrees with float64), so only the float64 re-score of every row
    whose interval reaches the k-th best gives the right answer."""
    d = 64
    base = rng.standard_normal(d)
    spread = rng.standard_normal((5000, d)) * 3  # sets each dimension's range (the step)
    near = base + rng.standard_normal((400, d)) * 1e-3  # << step (~0.1)
    m = np.concatenate([spread, near]).astype(np.float32)
    m = m[rng.permutation(len(m))]
    qr = quantized.quantize(m)
    queries = (base + rng.standard_normal((4, d)) * 1e-2).astype(np.float32)
    decoded = qr.offset + qr.scale * (qr.codes.astype(np.float64) - quantized.LEVELS)
    disagree = 0
    batch = quantized.search_batch(qr, queries, 25, metric, block_rows=700)
    for q, got_batch in zip(queries, batch, strict=True):
        want = reference(m, q, 25, metric)
        disagree += not np.array_equal(reference(decoded, q, 25, metric), want)
        assert quantized.search(qr, q, 25, metric).indices.tolist() == want.tolist()
        assert got_batch.indices.tolist() == want.tolist()
    assert disagree  # the case is adversarial: quantised scores alone get it wrong


def test_the_resident_part_is_a_quarter_of_float32_and_rows_can_live_in_a_file(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    m = rng.standard_normal((2000, 384)).astype(np.float32)
    path = tmp_path / "rows.f32"
    m.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=m.shape)
    qr = quantized.quantize(mapped, keep=mapped)
    assert qr.rows is mapped
    assert qr.nbytes <= 0.3 * m.nbytes  # codes (1 byte per value) + 36 bytes per row
    q = rng.standard_normal(384).astype(np.float32)
    for metric in METRICS:
        want = reference(m, q, 10, metric).tolist()
        assert quantized.search(qr, q, 10, metric).indices.tolist() == want


def test_many_single_queries_in_a_row_do_not_wear_out_the_interpreter(
    rng: np.random.Generator,
) -> None:
    """simsimd's ``out=`` took a reference to None per call that it never gave (a crash
    after ~10^4 calls, when None's count runs out); the scan must not use it. None's
    reference count stays where it was, and every call answers the same top 3. (From
    Python 3.12, None is immortal and its count fixed: the first check then holds anyway.)"""
    m = rng.standard_normal((50, 8)).astype(np.float32)
    qr = quantized.quantize(m)
    q = rng.standard_normal(8).astype(np.float32)
    want = reference(m, q, 3, "dot").tolist()
    answers = set()
    before = sys.getrefcount(None)
    for _ in range(3_000):  # enough to tell a reference lost per call, short of the crash
        answers.add(tuple(quantized.search(qr, q, 3, "dot").indices.tolist()))
    assert abs(sys.getrefcount(None) - before) < 1_000  # a reference per call: 3,000
    assert answers == {tuple(want)}


def _query_per_row(p: quantized._Queries, i: int, n: int) -> quantized._Queries:
    """Query ``i`` of ``p`` repeated ``n`` times: the per-query bounds, one per row."""
    same = np.full(n, i)
    fields = {
        f.name: getattr(p, f.name)[same]
        for f in dataclasses.fields(p)
        if f.name != "metric" and getattr(p, f.name) is not None
    }
    return dataclasses.replace(p, **fields)


def _sign_flips(
    rng: np.random.Generator, scale: float
) -> tuple[np.ndarray, quantized.QuantizedRows, np.ndarray]:
    """Rows that are one vector with its signs flipped at random: every row has the same
    norm, is quantised exactly and has the same error terms, so the set's largest terms
    are every row's own and only the rounding margins separate a row from its bounds."""
    base = rng.uniform(0.5, 2.0, 40)
    m = (base * rng.choice([-1.0, 1.0], (3000, 40)) * scale).astype(np.float32)
    queries = (rng.standard_normal((5, 40)) * scale).astype(np.float32)
    return m, quantized.quantize(m), queries


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("data", [_varied_norms, _sign_flips])
def test_the_batch_bounds_hold_for_every_rows_own_interval(
    rng: np.random.Generator, metric: str, scale: float, data: Callable
) -> None:
    """The set-wide bounds a batch picks its entries by, row by row against the row's own
    interval: the floor a row's value (``_block_values``) gives is at most its ``lo``, and
    with the floor at its own ``hi`` the row passes the threshold. Through the k-th best
    float64 score these bounds are loose by whatever the data leaves (an error term can go
    missing unseen); against each row's own interval there is no slack to hide in."""
    m, qr, queries = data(rng, scale)
    p = quantized._prepare_queries(qr, queries, metric)
    dots, values = quantized._block_values(qr, p, int8_scan.NUMPY_F32, qr.codes, slice(None))
    rows = np.arange(qr.count)
    for i in range(len(queries)):
        each = _query_per_row(p, i, qr.count)
        lo, hi = quantized._intervals(qr, each, rows, rows, dots[:, i].astype(np.float64))
        value = values[:, i].astype(np.float64)
        assert np.all(quantized._best_bound(qr, each, value) <= lo)
        if metric == "cosine":
            assert np.all(values[:, i] >= quantized._scaled_thresholds(qr, each, hi))
        elif metric == "dot":
            assert np.all(dots[:, i] >= quantized._thresholds(qr, each, hi))
        else:
            assert np.all(values[:, i] <= quantized._euclid_values_limit(qr, each, hi))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("k", [1, 7, 40])
@pytest.mark.parametrize("groups", [128, 3000])
def test_a_block_floor_never_passes_the_kth_float64_score(
    rng: np.random.Generator,
    metric: str,
    scale: float,
    k: int,
    groups: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batch's floor comes from each block's group bests with the set's largest
    error terms (no row named): it must stay at or under every query's k-th best float64
    score, and the block's entries must hold every row of the float64 top k. With a
    group per row the floor is as tight as it gets, so a missing error term shows."""
    monkeypatch.setattr(quantized, "GROUPS", groups)
    m, qr, queries = _varied_norms(rng, scale)
    p = quantized._prepare_queries(qr, queries, metric)
    _, values = quantized._block_values(qr, p, int8_scan.NUMPY_F32, qr.codes, slice(None))
    band = quantized._Band(len(queries), k, 10**6)
    ri, qi = quantized._block_entries(qr, p, band, values)
    assert np.all(np.isfinite(band.floor))
    for i, q in enumerate(queries):
        score = -reference_keys(m, q, metric)
        assert band.floor[i] <= np.sort(score)[::-1][k - 1]
        assert set(reference(m, q, k, metric).tolist()) <= set(ri[qi == i].tolist())


@pytest.mark.parametrize(
    ("scale", "float32"),
    [(1.0, True), (1e-9, True), (1e12, True), (1e-20, False), (1e15, False)],
)
def test_a_euclidean_batch_keeps_its_values_in_float32_while_they_fit(
    rng: np.random.Generator, scale: float, float32: bool
) -> None:
    m, qr, queries = _varied_norms(rng, scale)
    p = quantized._prepare_queries(qr, queries, "euclidean")
    assert (p.err32 is not None) == float32
    _, values = quantized._block_values(qr, p, int8_scan.NUMPY_F32, qr.codes, slice(None))
    assert values.dtype == (np.float32 if float32 else np.float64)
    for got, q in zip(quantized.search_batch(qr, queries, 9, "euclidean"), queries, strict=True):
        assert got.indices.tolist() == reference(m, q, 9, "euclidean").tolist()


def test_a_cosine_batch_over_zero_rows_ranks_them_at_cosine_zero(rng: np.random.Generator) -> None:
    """Every row zero (no norm to scale by), then one row not: a zero row's cosine is
    exactly 0, above any negative one and tied with the others by row."""
    m = np.zeros((3000, 16), np.float32)
    queries = rng.standard_normal((6, 16)).astype(np.float32)
    for ones in (False, True):
        if ones:
            m[5] = 1.0
        qr = quantized.quantize(m)
        got = quantized.search_batch(qr, queries, 4, "cosine")
        for q, result in zip(queries, got, strict=True):
            assert result.indices.tolist() == reference(m, q, 4, "cosine").tolist()
