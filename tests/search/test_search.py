"""Exact search: recall@k = 1.0 vs a float64 brute force, semantics vs the scalar twin.

The property tests run both engines: the float32 scan (``search``) and the compressed
int8 scan with its float64 re-score (``quantized``), the latter as each kind of CPU
serves it: with the integer engines this machine selects (``int8``), on a CPU whose u8 x
s8 gemm saturates (``int8-no-vnni``: a numpy model of it, checked and replaced as the
app does), and on the exact fallbacks alone (``int8-fallback``)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from shared.search import exact as search
from shared.search import int8_scan, quantized
from shared.vectors import scalar
from shared.vectors.errors import DimensionMismatchError, VectorFormatError
from shared.vectors.pool import BufferPool
from tests.search.reference import METRICS, reference, reference_keys
from tests.search.saturating import SATURATING, SATURATING_7BIT, candidates
from tests.support.vectors import blob

#: The int8 engine's integer candidates per kind of CPU (none: this machine's own).
INT8 = {
    "int8": {},
    "int8-no-vnni": {"batch": (SATURATING, SATURATING_7BIT, int8_scan.NUMPY_F32)},
    "int8-fallback": {
        "one": (int8_scan.NUMPY_F32,),
        "batch": (SATURATING, int8_scan.NUMPY_F32),
    },
}
ENGINES = ["float32", *INT8]


class Engine:
    """One set prepared for one metric by either engine, searched the same way."""

    def __init__(self, engine: str, m: np.ndarray, metric: str) -> None:
        self.metric = metric
        self.int8 = engine in INT8
        self.candidates = INT8.get(engine, {})
        self.handle = quantized.quantize(m) if self.int8 else search.prepare(m, metric)

    def one(self, q: np.ndarray, k: int, **kw):
        if self.int8:
            with candidates(**self.candidates):
                return quantized.search(self.handle, q, k, self.metric, **kw)
        return search.search(self.handle, q, k, **kw)

    def many(self, queries: np.ndarray, k: int, **kw):
        if self.int8:
            with candidates(**self.candidates):
                return quantized.search_batch(self.handle, queries, k, self.metric, **kw)
        return search.search_batch(self.handle, queries, k, **kw)


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = rng.standard_normal((5000, 48)).astype(np.float32)
    q = rng.standard_normal((9, 48)).astype(np.float32)
    return m, q


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("metric", METRICS)
def test_single_and_batch_match_float64_reference(data, metric: str, engine: str) -> None:
    m, queries = data
    prepared = Engine(engine, m, metric)
    pool = BufferPool()
    batch = prepared.many(queries, 10, pool=pool, block_rows=700)
    for q, got_batch in zip(queries, batch, strict=True):
        want = reference(m, q, 10, metric)
        got = prepared.one(q, 10, pool=pool)
        assert np.array_equal(got.indices, want)  # recall@10 = 1.0, same order
        assert np.array_equal(got_batch.indices, want)
        assert np.allclose(got_batch.distances, got.distances)
    s = pool.stats()
    assert s.rents == s.returns


@pytest.mark.parametrize("metric", METRICS)
def test_distance_and_similarity_follow_sp_exact_vector_search(data, metric: str) -> None:
    m, queries = data
    res = search.search(search.prepare(m, metric), queries[0], 5)
    for i, dist, sim in zip(res.indices, res.distances, res.similarities, strict=True):
        a, b = blob(queries[0]), blob(m[i])
        if metric == "cosine":
            cos = scalar.cosine_similarity(a, b)
            assert sim == pytest.approx(cos, abs=1e-6) and dist == pytest.approx(1 - cos, abs=1e-6)
        elif metric == "euclidean":
            d = scalar.euclidean_distance(a, b)
            assert dist == pytest.approx(d, rel=1e-6) and sim == pytest.approx(1 / (1 + d))
        else:
            dot = scalar.dot_product(a, b)
            assert sim == pytest.approx(dot, rel=1e-6) and dist == pytest.approx(-dot, rel=1e-6)
    assert np.all(np.diff(res.distances) >= 0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("metric", METRICS)
def test_ties_are_broken_by_row_index(rng: np.random.Generator, metric: str, engine: str) -> None:
    row = rng.standard_normal(16).astype(np.float32)
    m = rng.standard_normal((300, 16)).astype(np.float32) * 0.01
    dup_rows = [250, 3, 120, 77, 199]
    m[dup_rows] = row * 5
    row = m[3].copy()  # the query equals the duplicates: nearest under every metric
    prepared = Engine(engine, m, metric)
    want = sorted(dup_rows)
    assert prepared.one(row, 5).indices.tolist() == want
    for block in (None, 64):
        res = prepared.many(np.stack([row, row]), 5, block_rows=block)
        assert [r.indices.tolist() for r in res] == [want, want]


@pytest.mark.parametrize("engine", ENGINES)
def test_all_equal_scores_give_lowest_indices(engine: str) -> None:
    m = np.ones((100, 4), np.float32)
    for metric in METRICS:
        prepared = Engine(engine, m, metric)
        assert prepared.one(np.ones(4, np.float32), 7).indices.tolist() == list(range(7))
        res = prepared.many(np.ones((3, 4), np.float32), 7, block_rows=16)
        assert all(r.indices.tolist() == list(range(7)) for r in res)


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_vectors_have_cosine_zero(rng: np.random.Generator, engine: str) -> None:
    m = rng.standard_normal((20, 8)).astype(np.float32)
    m[4] = 0
    prepared = Engine(engine, m, "cosine")
    res = prepared.one(np.zeros(8, np.float32), 3)
    assert np.all(res.similarities == 0) and res.indices.tolist() == [0, 1, 2]
    full = prepared.one(m[0], 20)
    pos = full.indices.tolist().index(4)
    assert full.similarities[pos] == 0.0


def test_top_k_larger_than_rows_returns_all(rng: np.random.Generator) -> None:
    m = rng.standard_normal((4, 3)).astype(np.float32)
    prepared = search.prepare(m, "euclidean")
    assert sorted(search.search(prepared, m[0], 10).indices.tolist()) == [0, 1, 2, 3]
    assert len(search.search_batch(prepared, m, 10)[2].indices) == 4


def test_prepare_keeps_work_out_of_the_query_path(rng: np.random.Generator) -> None:
    m = rng.standard_normal((10, 6)).astype(np.float32)
    original = m.copy()
    cos = search.prepare(m, "cosine")
    assert np.allclose(np.linalg.norm(cos.vectors, axis=1), 1, atol=1e-6)
    assert cos.vectors.shape == (10, 6) and cos.vectors.flags.c_contiguous  # scan layout
    assert np.array_equal(m, original)  # copy=True leaves the caller's rows alone
    search.prepare(m, "cosine", copy=False)
    assert np.allclose(np.linalg.norm(m, axis=1), 1, atol=1e-6)  # normalised in place
    euc = search.prepare(m, "euclidean")
    assert euc.sq_norms is not None
    assert np.allclose(euc.sq_norms, (m.astype(np.float64) ** 2).sum(axis=1), rtol=1e-6)


def test_errors(rng: np.random.Generator) -> None:
    prepared = search.prepare(rng.standard_normal((10, 6)).astype(np.float32), "dot")
    with pytest.raises(DimensionMismatchError, match="query: dimension 5 does not match"):
        search.search(prepared, np.ones(5, np.float32), 3)
    with pytest.raises(DimensionMismatchError):
        search.search_batch(prepared, np.ones((2, 5), np.float32), 3)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(VectorFormatError) as err:
            search.search(prepared, np.ones(6, np.float32), bad)  # type: ignore[arg-type]
        assert err.value.field == "top_k"
    with pytest.raises(VectorFormatError, match="unknown metric"):
        search.prepare(np.ones((2, 2)), "manhattan")  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("metric", METRICS)
def test_near_duplicates_float32_cannot_order_are_still_exact(
    rng: np.random.Generator, metric: str, engine: str
) -> None:
    """200 rows a hair apart (1e-6): float32 scores misorder them, so a fixed re-score
    margin would miss some of the float64 top 10; the error-bound band does not."""
    d = 384
    base = rng.standard_normal(d)
    near = base + rng.standard_normal((200, d)) * 1e-6
    m = np.concatenate([rng.standard_normal((3000, d)), near]).astype(np.float32)
    m = m[rng.permutation(len(m))]
    prepared = Engine(engine, m, metric)
    queries = (base + rng.standard_normal((3, d)) * 1e-3).astype(np.float32)
    batch = prepared.many(queries, 10, block_rows=500)
    for q, got_batch in zip(queries, batch, strict=True):
        want = reference(m, q, 10, metric)
        assert prepared.one(q, 10).indices.tolist() == want.tolist()
        assert got_batch.indices.tolist() == want.tolist()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("layout", ["scattered", "dense"])
def test_a_band_wider_than_the_cap_still_finishes_exactly(
    rng: np.random.Generator,
    metric: str,
    layout: str,
    engine: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hundreds of identical rows: the batch hands the query to the single path, and
    the single path re-scores the whole band in chunks, or, when the duplicates fill
    their span of rows, reads that span block by block."""
    monkeypatch.setattr(search, "BAND_CAP", 50)
    monkeypatch.setattr(quantized, "BAND_CAP", 50)
    monkeypatch.setattr(search, "RESCORE_CHUNK", 64)
    monkeypatch.setattr(search, "DENSE_FROM", 100 if layout == "dense" else 10**9)
    row = rng.standard_normal(32).astype(np.float32)
    m = rng.standard_normal((2000, 32)).astype(np.float32)
    if layout == "dense":
        same = np.concatenate([np.arange(700, 1000), rng.choice(700, 20, replace=False)])
    else:
        same = rng.choice(2000, 300, replace=False)
    m[same] = row
    prepared = Engine(engine, m, metric)
    want = reference(m, row, 10, metric).tolist()
    assert want == sorted(same.tolist())[:10]
    assert prepared.one(row, 10).indices.tolist() == want
    res = prepared.many(np.stack([row, -row]), 10, block_rows=256)
    assert res[0].indices.tolist() == want
    assert res[1].indices.tolist() == reference(m, -row, 10, metric).tolist()


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_query_under_dot_ranks_by_row(engine: str) -> None:
    m = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    prepared = Engine(engine, m, "dot")
    assert prepared.one(np.zeros(3, np.float32), 4).indices.tolist() == [0, 1, 2, 3]
    res = prepared.many(np.zeros((2, 3), np.float32), 4, block_rows=8)
    assert [r.indices.tolist() for r in res] == [[0, 1, 2, 3]] * 2


@pytest.mark.parametrize("engine", ENGINES)
def test_euclidean_far_from_the_origin_ranks_by_the_differences(
    rng: np.random.Generator, engine: str
) -> None:
    """Rows near 1e6 that differ from the query in two coordinates: |x|^2 + |q|^2 - 2x.q
    loses the digits that separate them even in float64; the re-score must not."""
    d = 384
    q = (1e6 + rng.integers(-8, 8, d) * 0.0625).astype(np.float32)
    m = np.repeat(q[None], 500, axis=0)
    for i in range(500):
        m[i, rng.choice(d, 2, replace=False)] += rng.integers(1, 6, 2) * np.float32(0.0625)
    want = reference(m, q, 10, "euclidean").tolist()
    prepared = Engine(engine, m, "euclidean")
    assert prepared.one(q, 10).indices.tolist() == want
    assert prepared.many(np.stack([q, q]), 10)[0].indices.tolist() == want


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(int(os.environ.get("FUZZ_SEEDS", "6"))))
@pytest.mark.parametrize("small_steps", [False, True])
def test_random_shapes_ties_and_scales_match_the_reference(
    seed: int, small_steps: bool, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random sizes, k, block widths and data with exact ties, duplicates, near-duplicates
    and extreme scales. Rows whose float64 keys agree to 1e-12 count as interchangeable
    (the reference's own rounding cannot order them). ``small_steps`` shrinks the
    re-score chunk and the dense-span threshold so these small cases take those paths."""
    if small_steps:
        monkeypatch.setattr(search, "RESCORE_CHUNK", 128)
        monkeypatch.setattr(search, "DENSE_FROM", 16)
        monkeypatch.setattr(quantized, "SAMPLE_ROWS", 16)
        monkeypatch.setattr(quantized, "GROUPS", 4)
        monkeypatch.setattr(quantized, "PRUNE_FROM", 64)
    rng = np.random.default_rng(seed)
    for case in range(25):
        n, d, k = int(rng.integers(1, 1500)), int(rng.integers(1, 64)), int(rng.integers(1, 30))
        m = rng.standard_normal((n, d))
        kind, scale = case % 5, 1.0
        if kind == 1:
            m = np.round(m)  # many exact ties
        elif kind == 2:
            m[rng.integers(0, n, n // 2)] = m[0]
        elif kind == 3:
            m = m[0] + rng.standard_normal((n, d)) * 1e-6
        elif kind == 4:
            scale = float(rng.choice([1e-20, 1e15]))
        m = (m * scale).astype(np.float32)
        queries = (rng.standard_normal((int(rng.integers(1, 6)), d)) * scale).astype(np.float32)
        queries[-1] = m[int(rng.integers(0, n))]
        if case % 4 == 0:
            queries[0] = 0
        metric = METRICS[case % 3]
        prepared = Engine(engine, m, metric)
        batch = prepared.many(queries, k, block_rows=[None, 16, 300][case % 3])
        for q, got_batch in zip(queries, batch, strict=True):
            want = reference(m, q, k, metric)
            key = reference_keys(m, q, metric)
            for got in (prepared.one(q, k).indices, got_batch.indices):
                assert len(got) == len(want)
                assert np.allclose(np.sort(key[got]), np.sort(key[want]), rtol=1e-12, atol=0)


def test_cosine_on_a_strided_view_keeps_one_contiguous_copy_for_the_rescore(
    rng: np.random.Generator,
) -> None:
    m = rng.standard_normal((400, 16)).astype(np.float32)
    view = m[::2]  # neither C- nor F-contiguous
    prepared = search.prepare(view, "cosine")
    assert prepared.raw is not None and prepared.raw.flags.c_contiguous
    q = rng.standard_normal(16).astype(np.float32)
    assert (
        search.search(prepared, q, 5).indices.tolist() == reference(view, q, 5, "cosine").tolist()
    )


@pytest.mark.parametrize("metric", METRICS)
def test_search_rows_is_the_brute_force_over_those_rows_across_blocks(
    rng: np.random.Generator, metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chosen rows span several gather blocks and hold near-duplicates float32
    cannot order and exact ties: the hits are the float64 top-k among them alone."""
    monkeypatch.setattr(search, "GATHER_BLOCK", 64)
    d = 96
    base = rng.standard_normal(d)
    m = rng.standard_normal((3000, d))
    m[100:400] = base + rng.standard_normal((300, d)) * 1e-6
    m[500:520] = base  # exact ties: broken by row
    m = m.astype(np.float32)
    prepared = search.prepare(m, metric)  # type: ignore[arg-type]
    rows = np.flatnonzero(rng.random(len(m)) < 0.3)
    q = (base + rng.standard_normal(d) * 1e-3).astype(np.float32)
    for k in (1, 10, 50):
        got = search.search_rows(prepared, q, k, rows, pool=BufferPool())
        want = rows[reference(m[rows], q, k, metric)]
        assert got.indices.tolist() == want.tolist()
        keys = reference_keys(m[want], q, metric)
        found = got.distances if metric == "euclidean" else -got.similarities
        np.testing.assert_allclose(found, keys, rtol=1e-12, atol=1e-12)
    few = rows[:3]
    want_few = few[reference(m[few], q, 3, metric)]  # fewer rows than k: all of them
    assert search.search_rows(prepared, q, 10, few).indices.tolist() == want_few.tolist()
    assert search.search_rows(prepared, q, 10, rows[:0]).indices.tolist() == []


def test_block_dots_is_the_float32_product_within_the_error_bound(
    rng: np.random.Generator,
) -> None:
    """The batch scan's gemm (onnxruntime) against float64: within ``error_bound``."""
    m = rng.standard_normal((700, 384)).astype(np.float32)
    q = rng.standard_normal((5, 384)).astype(np.float32)
    out = np.full((5, 700), np.nan, np.float32)
    search.block_dots(q, m, out)
    exact = q.astype(np.float64) @ m.astype(np.float64).T
    prepared = search.prepare(m, "dot")
    bound = search.error_bound(prepared, np.linalg.norm(q.astype(np.float64), axis=1))
    assert np.all(np.abs(out - exact) <= bound[:, None])
    assert not np.array_equal(out, np.zeros_like(out))


@pytest.mark.parametrize("d", [1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 64, 127, 383, 384, 1536, 4099])
def test_one_query_against_many_rows_sums_as_the_pairs_do(rng: np.random.Generator, d: int) -> None:
    """``query_dots`` (one query, no copy per row) and ``pair_dots`` (a query per row)
    give the same digits: a batch and a single search re-score with either, and their
    answers must agree to the last bit."""
    for scale in (1e-30, 1.0, 1e30):
        x = (rng.standard_normal((37, d)) * scale).astype(np.float32).astype(np.float64)
        q = rng.standard_normal(d).astype(np.float32)
        want = search.pair_dots(x, np.broadcast_to(q.astype(np.float64), x.shape))
        assert np.array_equal(search.query_dots(x, q), want)


@pytest.mark.parametrize("metric", METRICS)
def test_a_small_set_scored_directly_answers_as_the_scan_does(
    rng: np.random.Generator, metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A set of at most ``DIRECT_VALUES`` values skips the float32 scan: every row is
    re-scored in float64. Same rows, same digits, same ties (by row) as the scan's path,
    with rows left out, a zero row and a zero query."""
    m = rng.standard_normal((120, 64)).astype(np.float32)
    m[9] = m[5]  # a tie
    m[11] = 0
    queries = [rng.standard_normal(64).astype(np.float32), m[5].copy(), np.zeros(64, np.float32)]
    exclude = np.zeros(len(m), bool)
    exclude[[3, 5, 40]] = True
    prepared = search.prepare(m, metric)
    cases = [(q, k, ex) for q in queries for k in (1, 7, 120) for ex in (None, exclude)]
    pool = BufferPool()
    direct = [search.search(prepared, q, k, pool=pool, exclude=ex) for q, k, ex in cases]
    assert pool.stats().rents == 0  # no scan, no band: nothing rented
    monkeypatch.setattr(search, "DIRECT_VALUES", 0)
    scanned = [search.search(prepared, q, k, pool=pool, exclude=ex) for q, k, ex in cases]
    assert pool.stats().rents > 0
    for (q, k, ex), a, b in zip(cases, direct, scanned, strict=True):
        assert np.array_equal(a.indices, b.indices)
        assert np.array_equal(a.distances, b.distances)
        assert np.array_equal(a.similarities, b.similarities)
        if ex is None:
            assert np.array_equal(a.indices, reference(m, q, k, metric))
        else:
            assert not set(a.indices.tolist()) & {3, 5, 40} and len(a.indices) == min(k, 117)


@pytest.mark.parametrize("metric", METRICS)
def test_a_small_batch_on_a_small_set_scored_directly_answers_as_the_scan_does(
    rng: np.random.Generator, metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of few queries on a small set is scored row by row in float64 as well:
    each query's answer as the batch's scan path gives it, to the last digit."""
    m = rng.standard_normal((100, 48)).astype(np.float32)
    m[9] = m[5]
    queries = rng.standard_normal((6, 48)).astype(np.float32)
    queries[1] = m[5]
    exclude = np.zeros(len(m), bool)
    exclude[[2, 9]] = True
    prepared = search.prepare(m, metric)
    pool = BufferPool()
    direct = [
        search.search_batch(prepared, queries, 7, pool=pool, exclude=ex) for ex in (None, exclude)
    ]
    assert pool.stats().rents == 0
    monkeypatch.setattr(search, "DIRECT_VALUES", 0)
    scanned = [
        search.search_batch(prepared, queries, 7, pool=pool, exclude=ex) for ex in (None, exclude)
    ]
    assert pool.stats().rents > 0
    for a_list, b_list in zip(direct, scanned, strict=True):
        for a, b in zip(a_list, b_list, strict=True):
            assert np.array_equal(a.indices, b.indices)
            assert np.array_equal(a.distances, b.distances)
            assert np.array_equal(a.similarities, b.similarities)
    for q, got in zip(queries, direct[0], strict=True):
        assert np.array_equal(got.indices, reference(m, q, 7, metric))
