"""Metadata filters: each operator and error path, ``check_metadata``'s limits, and
property tests that the columnar ``mask`` agrees with the one-row reference ``matches``
and that ``row(i)`` gives every row's metadata back.

The property tests are bounded and derandomized in `make test`; `make fuzz` sets
FUZZ_EXAMPLES and lets hypothesis pick new inputs each run.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import InvalidInputError
from shared.search.metadata_filter import (
    FILTER_MAX_DEPTH,
    FILTER_MAX_IN_VALUES,
    METADATA_MAX_BYTES,
    MetadataColumns,
    check_metadata,
    parse_filter,
)
from tests.support.filters import PROPERTY, random_filters

ROWS: list[dict[str, Any] | None] = [
    {"genre": "drama", "year": 2020, "tags": ["b", "a"], "seen": True},  # 0
    {"genre": "comedy", "year": 1999.5, "tags": [], "seen": False},  # 1
    None,  # 2
    {},  # 3
    {"genre": 5, "tags": ["a", "a", "c"]},  # 4: a number under a string key
    {"year": 2020.0, "genre": ["drama", "comedy"]},  # 5: a list under a string key
    {"seen": 1, "year": "2020"},  # 6: 1 is not true, "2020" is not 2020
]


def selected(spec: Any, rows: list[dict[str, Any] | None] = ROWS) -> list[int]:
    """Rows the filter selects, by mask; asserts the reference agrees."""
    f = parse_filter(spec)
    mask = f.mask(MetadataColumns.build(rows))
    assert mask.dtype == bool and mask.shape == (len(rows),)
    assert mask.tolist() == [f.matches(r) for r in rows], spec
    return np.flatnonzero(mask).tolist()


# -- operators ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "rows"),
    [
        ({"genre": "drama"}, [0, 5]),  # a bare value is $eq; a list holding it matches
        ({"genre": {"$eq": "comedy"}}, [1, 5]),
        ({"genre": {"$ne": "drama"}}, [1, 2, 3, 4, 6]),  # no field: matches (MongoDB's rule)
        ({"tags": "a"}, [0, 4]),
        ({"tags": {"$ne": "a"}}, [1, 2, 3, 5, 6]),  # a list holding none of it, or no list
        ({"year": 2020}, [0, 5]),  # 2020 == 2020.0; the string "2020" is not a number
        ({"year": {"$gt": 1999.5}}, [0, 5]),
        ({"year": {"$gte": 1999.5}}, [0, 1, 5]),
        ({"year": {"$lt": 2020}}, [1]),
        ({"year": {"$lte": 2020}}, [0, 1, 5]),
        ({"genre": {"$gt": 4}}, [4]),  # ranges see only numbers, even under a string key
        ({"seen": True}, [0]),  # 1 is not true
        ({"seen": 1}, [6]),  # and true is not 1
        ({"seen": {"$ne": False}}, [0, 2, 3, 4, 5, 6]),
        ({"genre": {"$in": ["comedy", 5]}}, [1, 4, 5]),
        ({"genre": {"$nin": ["comedy", 5]}}, [0, 2, 3, 6]),
        ({"tags": {"$in": ["c", "zz"]}}, [4]),
        ({"tags": {"$nin": ["a"]}}, [1, 2, 3, 5, 6]),
        ({"genre": {"$in": []}}, []),
        ({"genre": {"$nin": []}}, [0, 1, 2, 3, 4, 5, 6]),
        ({"tags": {"$exists": True}}, [0, 1, 4]),  # an empty list is there
        ({"tags": {"$exists": False}}, [2, 3, 5, 6]),
        ({"nowhere": {"$exists": False}}, [0, 1, 2, 3, 4, 5, 6]),
        ({"nowhere": {"$ne": 1}}, [0, 1, 2, 3, 4, 5, 6]),
        ({"nowhere": 1}, []),
        ({}, [0, 1, 2, 3, 4, 5, 6]),
        ({"genre": "drama", "year": 2020.0}, [0, 5]),  # several keys: and
        ({"year": {"$gte": 2000, "$lt": 2021}}, [0, 5]),  # several operators: and
        ({"$or": [{"genre": "comedy"}, {"seen": True}]}, [0, 1, 5]),
        ({"$and": [{"tags": "a"}, {"$or": [{"seen": True}, {"genre": 5}]}]}, [0, 4]),
        ({"$and": [{}], "genre": "drama"}, [0, 5]),
        ({"$or": [{}, {"genre": "x"}]}, [0, 1, 2, 3, 4, 5, 6]),
    ],
)
def test_each_operator_selects_the_rows_it_should(spec: Any, rows: list[int]) -> None:
    assert selected(spec) == rows


def test_rows_without_metadata_match_only_negative_and_empty_filters() -> None:
    f = parse_filter({"a": {"$ne": "x"}})
    assert f.matches(None) and f.matches({})
    assert not parse_filter({"a": "x"}).matches(None)
    assert parse_filter({}).matches(None) and parse_filter({}).matches_all


@pytest.mark.parametrize(
    ("values", "spec", "expected"),
    [
        # int16 column: thresholds between integers and at the dtype's edges
        ([1, 2, 3, -32767, 32767], {"$gt": 2.5}, [2, 4]),
        ([1, 2, 3, -32767, 32767], {"$gte": 2.5}, [2, 4]),
        ([1, 2, 3, -32767, 32767], {"$lt": -32767}, []),
        ([1, 2, 3, -32767, 32767], {"$lte": -32767}, [3]),
        ([1, 2, 3, -32767, 32767], {"$lt": 1e300}, [0, 1, 2, 3, 4]),
        ([1, 2, 3, -32767, 32767], {"$gt": -1e300}, [0, 1, 2, 3, 4]),
        ([1, 2, 3, -32767, 32767], {"$eq": 2.5}, []),
        ([1, 2, 3, -32767, 32767], {"$in": [2.0, 3.5, 40000]}, [1]),
        # int32: -32768 is int16's "absent" sentinel, so it widens the column
        ([-32768, 0, 40000], {"$lte": -32768}, [0]),
        ([-32768, 0, 40000], {"$gt": 39999.9}, [2]),
        # float32 column: operands between two float32 neighbours
        ([1.5, 2.5, 0.25], {"$gt": math.nextafter(1.5, 2)}, [1]),
        ([1.5, 2.5, 0.25], {"$gte": math.nextafter(1.5, 0)}, [0, 1]),
        ([1.5, 2.5, 0.25], {"$lt": math.nextafter(1.5, 2)}, [0, 2]),
        ([1.5, 2.5, 0.25], {"$lte": math.nextafter(1.5, 0)}, [2]),
        ([1.5, 2.5, 0.25], {"$eq": math.nextafter(1.5, 2)}, []),
        ([1.5, 2.5, 0.25], {"$gt": 1e39}, []),
        ([1.5, 2.5, 0.25], {"$gt": -1e39}, [0, 1, 2]),
        # float64 column
        ([0.1, 0.2, 0.30000000000000004], {"$gt": 0.3}, [2]),
        ([0.1, 0.2, 0.30000000000000004], {"$in": [0.1, 0.3]}, [0]),
        # -0.0 equals 0.0 but keeps its sign in the column
        ([-0.0, 0.0, 1], {"$eq": 0}, [0, 1]),
    ],
)
def test_numbers_compare_exactly_in_every_column_dtype(
    values: list[float], spec: dict[str, Any], expected: list[int]
) -> None:
    rows = [{"v": v} for v in values] + [None]  # dense columns, one absent slot
    assert selected({"v": spec}, rows) == expected


@pytest.mark.parametrize("distinct", [40, 300])  # int8 codes, int16 codes
def test_long_in_lists_over_strings_and_numbers(distinct: int) -> None:
    rng = np.random.default_rng(distinct)
    pool: list[Any] = [f"w{i:03d}" for i in range(distinct)]
    pool += list(range(0, 3 * distinct, 3)) + [i + 0.25 for i in range(distinct)]
    rows = [{"v": pool[int(i)]} for i in rng.integers(0, len(pool), 2000)]
    rows += [{"v": [pool[1], pool[7]]}, None]
    # Every other value: many runs of codes, so neither a few range compares will do.
    strings = pool[:distinct:2]
    ints = pool[distinct : 2 * distinct : 2]
    floats = pool[2 * distinct :: 2]
    for values in (strings, ints, floats, strings[:9] + ints[:9], strings[:3] + floats[:3]):
        assert selected({"v": {"$in": values}}, rows)
        assert selected({"v": {"$nin": values}}, rows)


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"year": {"$gte": "2020"}}, "filter.year.$gte"),
        ({"year": {"$gt": True}}, "filter.year.$gt"),
        ({"year": {"$lt": None}}, "filter.year.$lt"),
        ({"year": {"$lte": float("nan")}}, "filter.year.$lte"),
        ({"year": {"$lte": float("inf")}}, "filter.year.$lte"),
        ({"year": {"$eq": 10**400}}, "filter.year.$eq"),
        ({"$or": [{"a": 1}, {"genre": {"$in": "drama"}}]}, "filter.$or[1].genre.$in"),
        ({"genre": {"$in": ["a", True]}}, "filter.genre.$in[1]"),
        ({"genre": {"$nin": [["a"]]}}, "filter.genre.$nin[0]"),
        ({"genre": {"$exists": 1}}, "filter.genre.$exists"),
        ({"genre": {"$eq": ["a"]}}, "filter.genre.$eq"),
        ({"genre": ["a", "b"]}, "filter.genre"),
        ({"genre": None}, "filter.genre"),
        ({"genre": {}}, "filter.genre"),
        ({"genre": {"$regex": "d.*"}}, "filter.genre.$regex"),
        ({"genre": {"inner": 1}}, "filter.genre.inner"),
        ({"genre": {"$and": [{"a": 1}]}}, "filter.genre.$and"),
        ({"$not": {"a": 1}}, "filter.$not"),
        ({"$gt": 1}, "filter.$gt"),
        ({"$and": []}, "filter.$and"),
        ({"$or": []}, "filter.$or"),
        ({"$and": {"a": 1}}, "filter.$and"),
        ({"$and": [{"a": 1}, "b"]}, "filter.$and[1]"),
        (["genre", "drama"], "filter"),
        ("genre = drama", "filter"),
        (None, "filter"),
        ({"a": {"$in": ["x"] * (FILTER_MAX_IN_VALUES + 1)}}, "filter.a.$in"),
    ],
)
def test_a_bad_filter_names_its_path(spec: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_filter(spec)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_the_field_prefix_is_the_callers() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_filter({"a": {"$gt": "x"}}, "queries[2].filter")
    assert caught.value.field == "queries[2].filter.a.$gt"


def test_nesting_is_bounded() -> None:
    spec: dict[str, Any] = {"a": 1}
    for _ in range(FILTER_MAX_DEPTH):
        spec = {"$or": [spec]}
    assert parse_filter(spec).matches({"a": 1})
    with pytest.raises(InvalidInputError) as caught:
        parse_filter({"$and": [spec]})
    assert caught.value.field.startswith("filter.$and[0].$or[0]")


# -- canonical form ----------------------------------------------------------------------


def test_spellings_of_one_filter_share_a_canonical_text() -> None:
    a = parse_filter({"year": 2020, "tags": {"$in": ["y", "x", "x", 1, 1.0]}})
    b = parse_filter(
        {"$and": [{"tags": {"$in": ["x", "y", 1]}}, {"$and": [{"year": {"$eq": 2020.0}}]}]}
    )
    assert a.canonical() == b.canonical() and a == b and hash(a) == hash(b)
    assert json.loads(a.canonical()) == {
        "$and": [{"tags": {"$in": ["x", "y", 1]}}, {"year": {"$eq": 2020}}]
    }
    assert parse_filter({"$or": [{"a": 1}, {}]}).canonical() == "{}"
    assert parse_filter({"a": 1}) != parse_filter({"a": 2})


# -- check_metadata ----------------------------------------------------------------------


def test_check_metadata_returns_a_copy_of_valid_metadata() -> None:
    given_ = {"s": "é", "i": -(2**53), "f": 0.5, "b": False, "l": ("x", "y"), "e": []}
    out = check_metadata(given_, "metadata")
    assert out == {"s": "é", "i": -(2**53), "f": 0.5, "b": False, "l": ["x", "y"], "e": []}
    assert out is not given_ and type(out["l"]) is list
    assert check_metadata({}, "metadata") == {}


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ([1, 2], "items[3].metadata"),
        (None, "items[3].metadata"),
        ({"tags": ["a", 1]}, "items[3].metadata.tags[1]"),
        ({"tags": ["a", None]}, "items[3].metadata.tags[1]"),
        ({"a": None}, "items[3].metadata.a"),
        ({"a": {"b": 1}}, "items[3].metadata.a"),
        ({"a": float("nan")}, "items[3].metadata.a"),
        ({"a": float("-inf")}, "items[3].metadata.a"),
        ({"a": 2**53 + 1}, "items[3].metadata.a"),
        ({"$a": 1}, "items[3].metadata.$a"),
        ({1: "a"}, "items[3].metadata"),
    ],
)
def test_check_metadata_names_the_bad_value(value: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_metadata(value, "items[3].metadata")
    assert caught.value.field == field


def test_check_metadata_allows_8_kib_of_compact_json_and_no_more() -> None:
    overhead = len('{"t":""}')
    # "é" is two bytes of UTF-8: the limit counts bytes, not characters.
    fits = {"t": "é" * ((METADATA_MAX_BYTES - overhead) // 2)}
    assert check_metadata(fits, "m") == fits
    with pytest.raises(InvalidInputError) as caught:
        check_metadata({"t": "x" * (METADATA_MAX_BYTES - overhead + 1)}, "items[0].metadata")
    assert caught.value.field == "items[0].metadata"
    assert f"{METADATA_MAX_BYTES + 1} bytes" in str(caught.value)


# -- columns -----------------------------------------------------------------------------


def test_rows_come_back_with_their_types_and_list_order() -> None:
    columns = MetadataColumns.build(ROWS)
    assert columns.rows == len(ROWS)
    for i, row in enumerate(ROWS):
        # Key order within a row is the set's first-seen order, not the row's own.
        assert json.dumps(columns.row(i), sort_keys=True) == json.dumps(row, sort_keys=True)
    with pytest.raises(IndexError):
        columns.row(len(ROWS))


def test_an_empty_set_has_empty_masks() -> None:
    columns = MetadataColumns.build([])
    assert columns.rows == 0
    assert parse_filter({"a": {"$ne": 1}}).mask(columns).shape == (0,)


def test_four_indexed_fields_take_under_24_bytes_a_row() -> None:
    n = 20_000
    rng = np.random.default_rng(7)
    words = [f"genre-{i}" for i in range(50)]
    tags = [f"tag-{i}" for i in range(20)]
    rows = [
        {
            "genre": words[int(rng.integers(50))],
            "year": int(rng.integers(1950, 2025)),
            "draft": bool(rng.integers(2)),
            "tags": [tags[int(t)] for t in rng.permutation(20)[: int(rng.integers(4))]],
        }
        for _ in range(n)
    ]
    columns = MetadataColumns.build(rows)
    assert columns.nbytes / n <= 24
    # A key few rows hold is stored sparse: a handful of bytes per holding row.
    rows[5]["rare"] = 0.1
    rows[9]["rare"] = "x"
    assert MetadataColumns.build(rows).nbytes - columns.nbytes < 200
    f = parse_filter({"genre": "genre-3", "tags": {"$in": ["tag-1", "tag-2"]}, "draft": False})
    assert f.mask(columns).tolist() == [f.matches(r) for r in rows]
    assert all(columns.row(i) == rows[i] for i in range(0, n, 997))


def test_rare_list_values_and_few_empty_rows_are_stored_as_row_numbers() -> None:
    n = 4000
    rng = np.random.default_rng(11)
    rows: list[dict[str, Any] | None] = [
        {"tags": [f"t{int(t)}" for t in rng.choice(1000, size=3, replace=False)] + ["common"]}
        for _ in range(n)
    ]
    rows[17] = {}
    rows[3001] = {}
    rows[40] = None
    columns = MetadataColumns.build(rows)
    # A bitmap per distinct value would take 1000 * n/8 bytes; rare ones go as (row,
    # code) pairs of 6 bytes each, 72 kB here, next to the 1000 strings themselves.
    assert columns.nbytes < 1000 * n // 8 // 2
    for spec in (
        {"tags": "t5"},
        {"tags": {"$in": ["t5", "t999", "common", "nowhere"]}},
        {"tags": {"$nin": ["t1", "t2"]}},
        {"tags": {"$exists": False}},
    ):
        f = parse_filter(spec)
        assert f.mask(columns).tolist() == [f.matches(r) for r in rows], spec
    assert [columns.row(i) for i in (17, 40, 3001, 3002)] == [{}, None, {}, rows[3002]]


# -- properties --------------------------------------------------------------------------

KEYS = ["a", "b", "c", "d"]
WORDS = ["", "x", "y", "z", "é", "x y", "Y"]
EDGE_NUMBERS = [
    0,
    1,
    -1,
    2,
    1.0,
    0.5,
    -0.0,
    0.1,
    1.5,
    math.nextafter(1.5, 2),
    2020,
    32767,
    -32767,
    -32768,
    32768,
    2**31 - 1,
    -(2**31),
    2**53,
    16_777_217,
    3.4e38,
    1e39,
    -1e300,
]
value_numbers = st.one_of(
    st.sampled_from(EDGE_NUMBERS),
    st.integers(-5, 5),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-4, 4, width=32),
)
words = st.sampled_from(WORDS)
#: List elements: mostly common words (bitmaps), some that occur once (row numbers).
elements = st.one_of(words, words, st.text(alphabet="abcdefgh", min_size=2, max_size=4))
values = st.one_of(
    words,
    st.booleans(),
    value_numbers,
    st.lists(elements, max_size=7),
)


def _typed(kind: str) -> st.SearchStrategy[Any]:
    return {
        "s": words,
        "n": value_numbers,
        "b": st.booleans(),
        "l": st.lists(elements, max_size=4, unique=True),
    }[kind]


#: Rows whose keys each hold mostly one type (dense columns, bitmaps), then any mix.
typed_row = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={k: _typed(kind) for k, kind in zip(KEYS, "snbl", strict=True)},
    ),
)
mixed_row = st.one_of(st.none(), st.dictionaries(st.sampled_from(KEYS), values, max_size=4))
row_sets = st.one_of(
    st.lists(typed_row, max_size=80),
    # Sets of 48+ rows: a list value held by one or two rows is cheaper as row numbers
    # than as a bitmap of n/8 bytes.
    st.lists(typed_row, min_size=48, max_size=100),
    st.lists(mixed_row, max_size=40),
    st.lists(st.one_of(typed_row, mixed_row), max_size=80),
)

operand_numbers = st.one_of(
    value_numbers, value_numbers.map(lambda x: x + 0.5 if abs(x) < 2**52 else x)
)
scalars = st.one_of(words, st.booleans(), operand_numbers)
field = st.sampled_from([*KEYS, "zz"])
filters = random_filters(
    field, scalars, operand_numbers, st.one_of(elements, operand_numbers), max_in=12, max_leaves=10
)


@PROPERTY
@given(rows=row_sets, specs=st.lists(filters, min_size=1, max_size=4))
def test_mask_agrees_with_the_reference_row_by_row(
    rows: list[dict[str, Any] | None], specs: list[Any]
) -> None:
    rows = [None if r is None else check_metadata(r, "metadata") for r in rows]
    columns = MetadataColumns.build(rows)
    for spec in specs:
        f = parse_filter(spec)
        expected = [f.matches(r) for r in rows]
        assert f.mask(columns).tolist() == expected, (spec, f.canonical())
        again = parse_filter(json.loads(f.canonical()))
        assert again.canonical() == f.canonical()
        assert again.mask(columns).tolist() == expected


@PROPERTY
@given(rows=row_sets)
def test_every_row_comes_back_as_it_went_in(rows: list[dict[str, Any] | None]) -> None:
    rows = [None if r is None else check_metadata(r, "metadata") for r in rows]
    columns = MetadataColumns.build(rows)
    assert columns.rows == len(rows)
    for i, row in enumerate(rows):
        # JSON text tells 1 from 1.0, true from 1 and -0.0 from 0.0, and keeps list order.
        assert json.dumps(columns.row(i), sort_keys=True) == json.dumps(row, sort_keys=True)
