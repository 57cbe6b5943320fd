"""The vector functions called from plain SQL on SQLite, against the scalar twin."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shared.db.connection import Database, open_database
from shared.vectors import scalar, sql_functions
from tests.support.vectors import blob


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(":memory:")
    sql_functions.register(c)
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, g INTEGER, a BLOB, b BLOB)")
    yield c
    c.close()


def fill(c: sqlite3.Connection, rng: np.random.Generator, rows: int = 12, d: int = 5) -> None:
    for i in range(rows):
        a = rng.standard_normal(d).astype(np.float32)
        b = rng.standard_normal(d).astype(np.float32)
        c.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (i, i % 3, blob(a), blob(b)))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'v.db'}", on_connect=[sql_functions.register])
    database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, g INTEGER, a BLOB, b BLOB)")
    yield database
    database.close()


BINARY = {
    "vector_dot_product": scalar.dot_product,
    "vector_cosine_similarity": scalar.cosine_similarity,
    "vector_euclidean_distance": scalar.euclidean_distance,
    "vector_add": scalar.add,
    "vector_subtract": scalar.subtract,
}
UNARY = {
    "vector_norm": scalar.norm,
    "vector_normalize": scalar.normalize,
    "vector_softmax": scalar.softmax,
    "vector_argmax": scalar.argmax,
}


def test_scalar_functions_from_sql(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    fill(conn, rng)
    rows = conn.execute("SELECT a, b FROM t ORDER BY id").fetchall()
    for name, twin in BINARY.items():
        got = [r[0] for r in conn.execute(f"SELECT {name}(a, b) FROM t ORDER BY id")]
        assert got == [twin(a, b) for a, b in rows], name
    for name, twin in UNARY.items():
        got = [r[0] for r in conn.execute(f"SELECT {name}(a) FROM t ORDER BY id")]
        assert got == [twin(a) for a, _ in rows], name
    got = [r[0] for r in conn.execute("SELECT vector_scale(a, 2.5) FROM t ORDER BY id")]
    assert got == [scalar.scale(a, 2.5) for a, _ in rows]
    got = [r[0] for r in conn.execute("SELECT vector_lerp(a, b, 0.25) FROM t ORDER BY id")]
    assert got == [scalar.lerp(a, b, 0.25) for a, b in rows]


def test_nulls_and_empty(conn: sqlite3.Connection) -> None:
    row = conn.execute(
        "SELECT vector_dot_product(NULL, x'0000803f'), vector_norm(NULL), "
        "vector_argmax(x''), vector_scale(x'0000803f', NULL), vector_softmax(x'')"
    ).fetchone()
    assert row == (None, None, None, None, b"")


def test_aggregates_group_by(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    fill(conn, rng, rows=15)
    conn.execute("INSERT INTO t VALUES (100, 0, NULL, NULL)")  # NULLs are skipped
    got = conn.execute(
        "SELECT g, vector_centroid(a), vector_mean_variance(a), vector_geometric_median(a) "
        "FROM t GROUP BY g ORDER BY g"
    ).fetchall()
    assert [r[0] for r in got] == [0, 1, 2]
    for g, centroid, mv_json, median in got:
        vecs = [
            r[0]
            for r in conn.execute("SELECT a FROM t WHERE g = ? AND a IS NOT NULL ORDER BY id", (g,))
        ]
        aggs = [scalar.Centroid(), scalar.MeanVariance(), scalar.GeometricMedian()]
        for v in vecs:
            for agg in aggs:
                agg.step(v)
        assert centroid == aggs[0].finalize()
        assert json.loads(mv_json) == aggs[1].finalize()
        assert set(json.loads(mv_json)) == {"count", "mean", "variance"}
        assert median == aggs[2].finalize()
    assert conn.execute("SELECT vector_centroid(a) FROM t WHERE 0").fetchone() == (None,)


def test_errors_keep_the_reason(db: Database) -> None:
    cases = [
        (
            "SELECT vector_dot_product(x'0000803f0000803f', x'0000803f')",
            "vector_dot_product: b: dimension 1 does not match a: dimension 2",
        ),
        ("SELECT vector_norm(x'000080')", "v: byte length 3 is not a multiple of 4"),
        ("SELECT vector_scale(x'0000803f', 'two')", "s: expected a number, got str"),
    ]
    for sql, reason in cases:
        with pytest.raises(sqlite3.OperationalError) as err:
            db.query(sql)
        assert reason in str(err.value)
    db.execute("INSERT INTO t VALUES (1, 0, x'0000803f', NULL), (2, 0, x'0000803f00000000', NULL)")
    with pytest.raises(sqlite3.OperationalError) as err:
        db.query("SELECT vector_centroid(a) FROM t GROUP BY g")
    assert "vector_centroid: v: row 2 has dimension 2" in str(err.value)
    with pytest.raises(sqlite3.OperationalError) as err:  # a write reports the same way
        db.execute("UPDATE t SET b = vector_add(a, x'0000803f00000000') WHERE id = 1")
    assert "vector_add: b: dimension 2 does not match a: dimension 1" in str(err.value)


def test_a_reason_never_reaches_another_statement(tmp_path: Path, conn: sqlite3.Connection) -> None:
    def other_functions(c: sqlite3.Connection) -> None:  # one that records no reason
        c.create_function("boom", 0, lambda: 1 / 0)

    db = open_database(
        f"sqlite:///{tmp_path / 'o.db'}", on_connect=[sql_functions.register, other_functions]
    )
    try:
        # A function failing on a raw connection records a reason nobody takes...
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("SELECT vector_norm(x'000080')").fetchall()
        # ...and a later failure elsewhere says its own thing, not that reason.
        with pytest.raises(sqlite3.OperationalError) as err:
            db.query("SELECT boom()")
        assert "user-defined function raised exception" in str(err.value)
        with pytest.raises(sqlite3.OperationalError) as err:
            db.query("SELECT nope")
        assert "no such column: nope" in str(err.value)
    finally:
        db.close()


def test_reasons_are_kept_per_thread(db: Database) -> None:
    seen: dict[int, str] = {}

    def fail(dim: int) -> None:
        a = blob(np.ones(dim, dtype=np.float32))
        for _ in range(50):
            try:
                db.query("SELECT vector_dot_product(?, x'0000803f')", (a,))
            except sqlite3.OperationalError as exc:
                seen[dim] = str(exc)
                if f"dimension {dim}" not in str(exc):
                    return

    threads = [threading.Thread(target=fail, args=(d,)) for d in (2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for dim in (2, 3, 4):
        assert seen[dim] == f"vector_dot_product: b: dimension 1 does not match a: dimension {dim}"
