"""Filtered exact search: the hits are the float64 brute-force top ``min(k, matches)``
over the rows whose metadata matches, for every metric, on float32 and compressed sets,
single and batched, with ties, no matches and one match."""

from __future__ import annotations

import numpy as np
import pytest

from shared.search import exact as core
from shared.search import loaded as loaded_module
from shared.search import quantized
from shared.search.loaded import LoadedSet
from shared.search.metadata_filter import MetadataColumns, parse_filter
from shared.vectors.errors import VectorFormatError
from shared.vectors.pool import BufferPool
from tests.search.reference import METRICS, reference, reference_keys

N, D = 1200, 24

#: Filters of every selectivity: a few rows (the gather paths), most rows (the masked
#: scan), one row, none, and lists and nesting.
FILTERS = [
    {"n": {"$lt": 40}},
    {"group": "g3"},
    {"n": {"$gte": 150}},
    {"$or": [{"group": {"$in": ["g1", "g2"]}}, {"tags": "odd"}]},
    {"n": 777},
    {"group": "nobody"},
    {"tags": {"$nin": ["odd"]}, "n": {"$lt": 900}},
]


def _metadata(n: int) -> list[dict | None]:
    rows: list[dict | None] = []
    for i in range(n):
        if i % 11 == 10:
            rows.append(None)  # rows without metadata match no equality
            continue
        rows.append({"n": i, "group": f"g{i % 7}", "tags": ["odd"] if i % 2 else ["even"]})
    return rows


def _rows(rng: np.random.Generator, n: int = N) -> np.ndarray:
    """Rows with exact ties: groups of identical rows spread over the set, and a zero row
    (cosine 0 with everything)."""
    m = rng.standard_normal((n, D)).astype(np.float32)
    for start in (3, 50, 400):
        m[start : start + 600 : 97] = m[start]
    m[13] = 0
    return m


def _sets(m: np.ndarray, metadata: list[dict | None]) -> dict[str, LoadedSet]:
    columns = MetadataColumns.build(metadata)
    ids = [f"e{i}" for i in range(len(m))]
    plain = LoadedSet("m", "t", 1, ids, core.prepare(m, "dot"), metadata=columns)
    packed = LoadedSet("m", "t", 1, ids, None, quantized.quantize(m), metadata=columns)
    return {"float32": plain, "compressed": packed}


def _expected(
    m: np.ndarray, metadata: list[dict | None], spec: dict, q: np.ndarray, k: int, metric: str
) -> np.ndarray:
    """The float64 brute force over the matching rows (by the reference ``matches``)."""
    where = parse_filter(spec)
    idx = np.array([i for i, md in enumerate(metadata) if where.matches(md)], np.int64)
    if not idx.size:
        return idx
    return idx[reference(m[idx], q, k, metric)]


def _queries(rng: np.random.Generator, m: np.ndarray) -> np.ndarray:
    q = rng.standard_normal((4, D)).astype(np.float32)
    q[1] = m[50]  # ties for first place: identical rows
    q[2] = m[3] * 2
    return q


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, list[dict | None], dict[str, LoadedSet]]:
    rng = np.random.default_rng(19)
    m = _rows(rng)
    metadata = _metadata(N)
    return m, metadata, _sets(m, metadata)


@pytest.mark.parametrize("path", ["gather", "scan"])
@pytest.mark.parametrize("kind", ["float32", "compressed"])
@pytest.mark.parametrize("metric", METRICS)
def test_filtered_hits_are_the_brute_force_over_matching_rows(
    data, kind, metric, path, monkeypatch
) -> None:
    """Every filter through both paths: the matching rows gathered, and every row
    scanned with the others masked out."""
    share = 1.0 if path == "gather" else 0.0
    monkeypatch.setattr(loaded_module, "GATHER_SHARE", share)
    monkeypatch.setattr(quantized, "GATHER_SHARE", share)
    m, metadata, sets = data
    loaded = sets[kind]
    queries = _queries(np.random.default_rng(7), m)
    pool = BufferPool()
    for spec in FILTERS:
        where = parse_filter(spec)
        for k in (1, 10, 500):
            batch = loaded.search(queries, k, metric, pool, where)
            for qi, q in enumerate(queries):
                want = _expected(m, metadata, spec, q, k, metric)
                single = loaded.search(q[None], k, metric, pool, where)[0]
                assert single.indices.tolist() == want.tolist(), (spec, k, qi)
                assert batch[qi].indices.tolist() == want.tolist(), (spec, k, qi)
                keys = reference_keys(m[want], q, metric)
                got = single.distances if metric == "euclidean" else -single.similarities
                np.testing.assert_allclose(got, keys, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["float32", "compressed"])
def test_no_match_gives_no_hits_and_one_match_gives_one(data, kind) -> None:
    m, _metadata_rows, sets = data
    loaded = sets[kind]
    q = m[:2] + 0.5
    for metric in METRICS:
        none = loaded.search(q, 5, metric, BufferPool(), parse_filter({"group": "nobody"}))
        assert [r.indices.tolist() for r in none] == [[], []]
        one = loaded.search(q, 5, metric, BufferPool(), parse_filter({"n": 777}))
        assert [r.indices.tolist() for r in one] == [[777], [777]]
        alone = loaded.search(q[:1], 5, metric, BufferPool(), parse_filter({"n": 777}))
        assert alone[0].indices.tolist() == [777]


@pytest.mark.parametrize("kind", ["float32", "compressed"])
def test_a_zero_query_ranks_matching_rows_by_row_index(data, kind) -> None:
    """Every cosine and dot score is 0: the ties break by row, among matching rows only."""
    _m, metadata, sets = data
    where = parse_filter({"group": "g3"})
    want = [i for i, md in enumerate(metadata) if where.matches(md)][:6]
    zero = np.zeros((2, D), np.float32)
    for metric in ("cosine", "dot"):
        got = sets[kind].search(zero, 6, metric, BufferPool(), where)
        assert [r.indices.tolist() for r in got] == [want, want]
        assert sets[kind].search(zero[:1], 6, metric, BufferPool(), where)[0].indices.tolist() == (
            want
        )


@pytest.mark.parametrize("metric", METRICS)
def test_the_engines_keep_masked_rows_out_over_many_blocks(metric: str) -> None:
    """The engines directly, with blocks far smaller than the set: a mask that keeps
    every third row, the best rows of the whole set outside it (they would win
    unmasked), and more queries than one block's floor."""
    rng = np.random.default_rng(3)
    m = rng.standard_normal((5000, 16)).astype(np.float32)
    queries = rng.standard_normal((6, 16)).astype(np.float32)
    mask = np.zeros(len(m), bool)
    mask[::3] = True
    best = np.unique(np.concatenate([reference(m, q, 20, metric) for q in queries]))
    mask[best] = False
    idx = np.flatnonzero(mask)
    want = [idx[reference(m[idx], q, 15, metric)].tolist() for q in queries]

    matrix = core.prepare(m, metric)  # type: ignore[arg-type]
    got = core.search_batch(matrix, queries, 15, exclude=~mask, block_rows=256)
    assert [r.indices.tolist() for r in got] == want
    assert [core.search(matrix, q, 15, exclude=~mask).indices.tolist() for q in queries] == want

    qr = quantized.quantize(m)
    got = quantized.search_batch(qr, queries, 15, metric, mask=mask, block_rows=1024)  # type: ignore[arg-type]
    assert [r.indices.tolist() for r in got] == want
    few = np.zeros(len(m), bool)
    few[idx[: int(quantized.GATHER_SHARE * len(m)) // 2]] = True  # the gathered-codes path
    want_few = [np.flatnonzero(few)[reference(m[few], q, 15, metric)].tolist() for q in queries]
    for q, w in zip(queries, want_few, strict=True):
        assert quantized.search(qr, q, 15, metric, mask=few).indices.tolist() == w  # type: ignore[arg-type]
    for q, w in zip(queries, want, strict=True):
        assert quantized.search(qr, q, 15, metric, mask=mask).indices.tolist() == w  # type: ignore[arg-type]


def test_a_mask_of_the_wrong_length_is_refused() -> None:
    m = np.ones((10, 4), np.float32)
    with pytest.raises(VectorFormatError, match="exclude"):
        core.search(core.prepare(m, "dot"), m[0], 3, exclude=np.zeros(9, bool))
    with pytest.raises(VectorFormatError, match="mask"):
        quantized.search(quantized.quantize(m), m[0], 3, "dot", mask=np.zeros(9, bool))


def test_metadata_counts_toward_the_set_s_memory(data) -> None:
    m, metadata, _sets_by_kind = data
    fresh = _sets(m, metadata)  # not yet prepared for other metrics
    ids = [f"e{i}" for i in range(len(m))]
    bare = {
        "float32": LoadedSet("m", "t", 1, ids, core.prepare(m, "dot")),
        "compressed": LoadedSet("m", "t", 1, ids, None, fresh["compressed"].compressed),
    }
    columns = fresh["float32"].metadata
    assert columns is not None and columns.nbytes > 0
    for kind, loaded in fresh.items():
        assert loaded.nbytes == bare[kind].nbytes + columns.nbytes
        assert loaded.metadata_of(3) == metadata[3]
        assert loaded.metadata_of(10) is None
