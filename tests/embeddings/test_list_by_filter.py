"""Listing, counting and deleting a set's rows by metadata filter: the SQL translation of
a filter against the reference ``MetadataFilter.matches`` (a property test over random
metadata and filters, on real SQLite), cursor walks while rows are written, delete by
filter, the 400s, and the three routes through the local host.

The property test is bounded and derandomized in `make test`; `make fuzz` sets
FUZZ_EXAMPLES and lets hypothesis pick new inputs each run.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st

from shared.db.connection import Database
from shared.db.dialects import MSSQL, SQLITE
from shared.embeddings.metadata_sql import metadata_condition
from shared.embeddings.repository import EmbeddingRepository
from shared.embeddings.service import EmbeddingStore, Limits, decode_cursor, encode_cursor
from shared.errors import InvalidInputError
from shared.search.metadata_filter import check_metadata, parse_filter
from tests.support.db import BOTH_DRIVERS
from tests.support.filters import PROPERTY, random_filters

_fresh = itertools.count()


def _set(repo: EmbeddingRepository, rows: list[dict[str, Any] | None]) -> str:
    """A new set holding `rows` as metadata, entity ids r0, r1, ... in order."""
    model = f"m{next(_fresh)}"
    checked = [None if m is None else check_metadata(m, "metadata") for m in rows]
    vector = np.float32([1, 0]).tobytes()
    if rows:
        repo.upsert_many(model, "default", [(f"r{i}", vector) for i in range(len(rows))], checked)
    return model


def _selected(repo: EmbeddingRepository, model: str, spec: Any) -> list[str]:
    f = parse_filter(spec)
    listed = [r.entity_id for r in repo.list_page(model, "default", f, 0, 1000)]
    assert repo.count_matching(model, "default", f) == len(listed)
    return listed


def _expected(rows: list[dict[str, Any] | None], spec: Any) -> list[str]:
    f = parse_filter(spec)
    return [f"r{i}" for i, m in enumerate(rows) if f.matches(m)]


# -- the translation against the reference ---------------------------------------------

ROWS: list[dict[str, Any] | None] = [
    {"genre": "drama", "year": 2020, "tags": ["b", "a"], "seen": True},  # r0
    {"genre": "comedy", "year": 1999.5, "tags": [], "seen": False},  # r1
    None,  # r2
    {},  # r3
    {"genre": 5, "tags": ["a", "a", "c"]},  # r4: a number under a string key
    {"year": 2020.0, "genre": ["drama", "comedy"]},  # r5: a list under a string key
    {"seen": 1, "year": "2020"},  # r6: 1 is not true, "2020" is not 2020
    {'we"ird.key': "x ", "big": 2**53, "neg": -0.0},  # r7: a key no JSON path could spell
    {"genre": "Drama", "tags": ["A"], "big": 2**53 - 1},  # r8: strings compare exactly
]

SPECS: list[Any] = [
    {"genre": "drama"},
    {"genre": {"$ne": "drama"}},
    {"tags": "a"},
    {"tags": {"$ne": "a"}},
    {"year": 2020},
    {"year": {"$gt": 1999.5}},
    {"year": {"$gte": 1999.5}},
    {"year": {"$lt": 2020}},
    {"year": {"$lte": 2020}},
    {"genre": {"$gt": 4}},
    {"seen": True},
    {"seen": 1},
    {"seen": {"$ne": False}},
    {"seen": {"$gte": 0}},  # booleans are not numbers
    {"seen": {"$in": [1, 0]}},
    {"genre": {"$in": ["comedy", 5]}},
    {"genre": {"$nin": ["comedy", 5]}},
    {"tags": {"$in": ["c", "zz"]}},
    {"tags": {"$nin": ["a"]}},
    {"genre": {"$in": []}},
    {"genre": {"$nin": []}},
    {"tags": {"$exists": True}},
    {"tags": {"$exists": False}},
    {"nowhere": {"$ne": 1}},
    {},
    {"$or": [{"genre": "comedy"}, {"seen": True}]},
    {"$and": [{"tags": "a"}, {"$or": [{"seen": True}, {"genre": 5}]}]},
    {'we"ird.key': "x "},
    {'we"ird.key': "x"},  # trailing spaces count
    {"big": 2**53},
    {"big": {"$lt": 2**53}},
    {"neg": 0},
    {"genre": "drama", "year": 2020.0},
]


@BOTH_DRIVERS
def test_each_operator_selects_what_the_reference_selects(db: Database) -> None:
    """Every operator, through both SQLite drivers (their parameter binding differs)."""
    repo = EmbeddingRepository(db)
    model = _set(repo, ROWS)
    for spec in SPECS:
        assert _selected(repo, model, spec) == _expected(ROWS, spec), spec
    # A sample of the table, spelled out, so the reference itself is pinned too.
    assert _selected(repo, model, {"genre": "drama"}) == ["r0", "r5"]
    not_false = ["r0", "r2", "r3", "r4", "r5", "r6", "r7", "r8"]
    assert _selected(repo, model, {"seen": {"$ne": False}}) == not_false
    assert _selected(repo, model, {"tags": {"$in": ["c", "zz"]}}) == ["r4"]


KEYS = ["genre", "year", "tags", "seen", 'q"k', "a.b"]
WORDS = ["drama", "comedy", "news", "", "Drama", "drama ", "é"]
EDGE_NUMBERS = [0, -0.0, 1, 1.0, -1, 0.1, 0.30000000000000004, 2**53, -(2**53), 1e300, 5e-324]
numbers = st.one_of(
    st.sampled_from(EDGE_NUMBERS),
    st.integers(-5, 5),
    st.sampled_from([0, 1, 0.5]),  # beside booleans, which SQLite's JSON reads as 1 and 0
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-4, 4, width=32),
)
words = st.sampled_from(WORDS)
values = st.one_of(
    words,
    st.booleans(),
    numbers,
    st.lists(words, max_size=4),
)
metadata_rows = st.one_of(st.none(), st.dictionaries(st.sampled_from(KEYS), values, max_size=5))
scalars = st.one_of(words, st.booleans(), numbers)
field = st.sampled_from([*KEYS, "zz"])
filters = random_filters(field, scalars, numbers, st.one_of(words, numbers), max_in=6, max_leaves=8)


@PROPERTY
@given(
    rows=st.lists(metadata_rows, min_size=4, max_size=30),
    specs=st.lists(filters, min_size=1, max_size=4),
)
def test_sql_selects_exactly_the_rows_the_reference_matches(
    db: Database, rows: list[dict[str, Any] | None], specs: list[Any]
) -> None:
    repo = EmbeddingRepository(db)
    model = _set(repo, rows)
    for spec in specs:
        assert _selected(repo, model, spec) == _expected(rows, spec), spec


def test_keys_and_values_never_reach_the_sql_text() -> None:
    """Both dialects: whatever a filter holds travels as parameters."""
    spec = {
        "'; DROP TABLE embeddings; --": {"$in": ["x' OR '1'='1", 7]},
        "k": {"$ne": "v'v"},
        "n": {"$gte": 3},
    }
    f = parse_filter(spec)
    for dialect_sql, params in (metadata_condition(f, MSSQL), metadata_condition(f, SQLITE)):
        assert (
            "DROP" not in dialect_sql and "'1'='1" not in dialect_sql and "v'v" not in dialect_sql
        )
        assert dialect_sql.count("?") == len(params)
        assert "'; DROP TABLE embeddings; --" in params and 3.0 in params


@PROPERTY
@given(spec=filters)
def test_the_azure_sql_text_is_t_sql_with_a_parameter_for_each_value(spec: Any) -> None:
    """No SQL Server runs here, so the Azure SQL rendering is held to T-SQL's grammar
    (sqlglot's T-SQL parser) in the three statements the repository sends, with one
    placeholder per parameter; SQLite runs the same filters for their results above."""
    condition, params = metadata_condition(parse_filter(spec), MSSQL)
    where = f"model_id = ? AND embedding_type = ? AND {condition}"
    statements = [
        MSSQL.limit(
            f"SELECT id, entity_id, metadata FROM embeddings WHERE {where} AND id > ?", "id"
        ),
        f"SELECT COUNT(*) AS n FROM embeddings WHERE {where}",
        f"DELETE FROM embeddings WHERE {where}",
    ]
    extra = [4, 2, 2]  # model_id, embedding_type (, after id, page size)
    for sql, more in zip(statements, extra, strict=True):
        tree = sqlglot.parse_one(sql, read="tsql")
        assert len(list(tree.find_all(sqlglot.exp.Placeholder))) == len(params) + more, sql


def test_the_t_sql_check_refuses_broken_text() -> None:
    """The check above can fail: text a renderer could get wrong is refused."""
    condition, _ = metadata_condition(parse_filter({"a": {"$in": ["x", 1]}}), MSSQL)
    for broken in (condition[:-1], condition.replace(" AS s", " AS", 1), f"{condition} AND"):
        with pytest.raises(sqlglot.errors.ParseError):
            sqlglot.parse_one(f"SELECT id FROM embeddings WHERE {broken}", read="tsql")


# -- walking a set -------------------------------------------------------------------------


def _ids(repo: EmbeddingRepository, model: str) -> dict[str, int]:
    return {r.entity_id: r.id for r in repo.list_page(model, "default", parse_filter({}), 0, 1000)}


@BOTH_DRIVERS
def test_a_cursor_walk_sees_every_row_once_while_rows_are_written(db: Database) -> None:
    repo = EmbeddingRepository(db)
    store = EmbeddingStore(repo, Limits(64, 1000))
    vector = [1.0, 2.0]
    first = [(f"e{i:02d}", vector) for i in range(23)]
    store.upsert("walk", "default", first, [{"n": i, "even": i % 2 == 0} for i in range(23)])
    ids_before = _ids(repo, "walk")

    seen: list[str] = []
    cursor: str | None = None
    page = 0
    while True:
        items, cursor = store.list_rows("walk", "default", None, 4, cursor)
        seen += [r.entity_id for r in items]
        page += 1
        # Between pages: a new row, and a rewrite of a row already seen and of one not yet.
        store.upsert("walk", "default", [(f"new{page}", vector)], [{"n": 100 + page}])
        store.upsert("walk", "default", [("e00", vector), ("e22", vector)], [{"n": -1}, None])
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a row came twice"
    assert set(seen) >= {e for e, _ in first}, "a row present throughout was missed"
    # Rows written during the walk come after every earlier row (larger ids) and are
    # seen when written before the walk reached the end.
    assert seen[:23] == [e for e, _ in first]
    # A rewrite keeps the row's id: the upsert updates in place.
    ids_after = _ids(repo, "walk")
    assert ids_after["e00"] == ids_before["e00"] and ids_after["e22"] == ids_before["e22"]

    # With a filter, pages hold only matching rows, and the walk ends.
    got, cursor = [], None
    while True:
        items, cursor = store.list_rows("walk", "default", {"even": True}, 3, cursor)
        assert all(r.metadata is not None and r.metadata["even"] is True for r in items)
        got += [r.entity_id for r in items]
        if cursor is None:
            break
    assert got == [f"e{i:02d}" for i in range(2, 22, 2)]  # e00 was rewritten without "even"


def test_a_page_reads_the_set_from_its_cursor_without_sorting_it(db: Database) -> None:
    """Migration 5's index keeps a page's cost to its own rows: SQLite walks it from the
    cursor instead of reading the whole set and sorting it by id."""
    plan = db.query(
        "EXPLAIN QUERY PLAN "
        + db.dialect.limit(
            "SELECT id, entity_id, metadata FROM embeddings "
            "WHERE model_id = ? AND embedding_type = ? AND id > ?",
            "id",
        ),
        ["m", "default", 0, 10],
    )
    details = " | ".join(r["detail"] for r in plan)
    assert "ix_embeddings_set_id" in details and "TEMP B-TREE" not in details, details


def test_a_page_shorter_than_the_limit_ends_the_walk(db: Database) -> None:
    store = EmbeddingStore(EmbeddingRepository(db), Limits(64, 1000))
    store.upsert("short", "default", [("a", [1.0]), ("b", [2.0])], [{"k": 1}, {"k": 2}])
    items, cursor = store.list_rows("short", "default", None, 5, None)
    assert [(r.entity_id, r.metadata) for r in items] == [("a", {"k": 1}), ("b", {"k": 2})]
    assert cursor is None
    items, cursor = store.list_rows("short", "default", None, 2, None)
    assert len(items) == 2 and cursor is not None
    items, cursor = store.list_rows("short", "default", None, 2, cursor)
    assert items == [] and cursor is None
    assert store.list_rows("nobody", "default", None, 5, None) == ([], None)


def test_cursors_are_opaque_and_checked() -> None:
    assert decode_cursor(encode_cursor(12345)) == 12345
    for bad in ["", "!!!", "aWQ6", "aWQ6LTE", "bm90IGEgY3Vyc29y", encode_cursor(10**30)]:
        with pytest.raises(InvalidInputError) as caught:
            decode_cursor(bad)
        assert caught.value.field == "cursor", bad


# -- delete and count ----------------------------------------------------------------------


@BOTH_DRIVERS
def test_delete_by_filter_counts_bumps_the_version_and_drops_the_snapshot(db: Database) -> None:
    repo = EmbeddingRepository(db)
    forgotten: list[tuple[str, str]] = []
    store = EmbeddingStore(
        repo, Limits(64, 1000), forget_snapshot=lambda m, t: forgotten.append((m, t))
    )
    items = [(f"e{i}", [float(i), 1.0]) for i in range(10)]
    store.upsert("del", "default", items, [{"year": 2000 + i} for i in range(10)])
    store.upsert("del", "other", items[:3], None)

    def version() -> int:
        return int(
            db.scalar(
                "SELECT version FROM embedding_sets WHERE model_id = ? AND embedding_type = ?",
                ("del", "default"),
            )
        )

    before = version()
    assert store.count("del", "default", {"year": {"$gte": 2006}}) == 4
    assert store.delete_matching("del", "default", {"year": {"$gte": 2006}}) == 4
    assert version() == before + 1 and forgotten == [("del", "default")]
    assert store.count("del", "default", None) == 6
    assert store.count("del", "default", {"year": {"$gte": 2006}}) == 0

    # Nothing matched: nothing deleted, the version and snapshot stay.
    assert store.delete_matching("del", "default", {"year": 1}) == 0
    assert version() == before + 1 and len(forgotten) == 1

    # {} deletes the whole set, and only that set.
    assert store.delete_matching("del", "default", {}) == 6
    assert store.count("del", "default", None) == 0
    assert store.count("del", "other", None) == 3
    with pytest.raises(InvalidInputError) as caught:
        store.delete_matching("del", "other", None)
    assert caught.value.field == "filter"


def test_a_bad_filter_is_refused_naming_its_path(db: Database) -> None:
    store = EmbeddingStore(EmbeddingRepository(db), Limits(64, 1000))
    for call in (
        lambda f: store.list_rows("m", "default", f, 10, None),
        lambda f: store.count("m", "default", f),
        lambda f: store.delete_matching("m", "default", f),
    ):
        with pytest.raises(InvalidInputError) as caught:
            call({"year": {"$gte": "2020"}})
        assert caught.value.field == "filter.year.$gte"
        with pytest.raises(InvalidInputError) as caught:
            call({"$or": [{"a": 1}, {"b": {"$regex": "x"}}]})
        assert caught.value.field == "filter.$or[1].b.$regex"


# -- through the local host ----------------------------------------------------------------
