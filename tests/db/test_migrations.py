"""Migrations: applied once, twice is a no-op, concurrent processes do not collide;
the SQL Server text is checked since SQL Server cannot run here."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from shared.db.connection import open_database
from shared.db.dialects import MSSQL, SQLITE
from shared.db.migrate import apply_migrations, current_version, plan
from shared.db.schema import MIGRATIONS, TABLES
from tests.support.db import connection_string

LATEST = MIGRATIONS[-1].version


def _tables(db) -> set[str]:
    rows = db.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r["name"] for r in rows}


def test_fresh_database_gets_every_table_and_the_latest_version(db) -> None:
    assert {t.name for t in TABLES} | {"schema_version"} <= _tables(db)
    assert current_version(db) == LATEST


def test_applying_twice_changes_nothing(db) -> None:
    assert apply_migrations(db) == []
    assert db.scalar("SELECT COUNT(*) AS n FROM schema_version") == len(MIGRATIONS)


def _migrate_in_process(conn_str: str, barrier, results) -> None:
    db = open_database(conn_str)
    barrier.wait()
    results.put(apply_migrations(db))


@pytest.mark.parametrize("driver", ["sqlite3", "pyodbc"])
def test_two_processes_migrating_at_once_apply_each_migration_once(
    tmp_path: Path, driver: str
) -> None:
    conn_str = connection_string(driver, tmp_path / "race.db")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_migrate_in_process, args=(conn_str, barrier, results)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    applied = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    # Exactly one process applied the migrations; the others found them done.
    assert sorted(len(a) for a in applied) == [0, 0, len(MIGRATIONS)]
    db = open_database(conn_str)
    assert db.scalar("SELECT COUNT(*) AS n FROM schema_version") == len(MIGRATIONS)


def test_sqlite_ddl_is_idempotent_text() -> None:
    for stmt in plan(SQLITE):
        assert stmt.startswith(
            ("CREATE TABLE IF NOT EXISTS", "CREATE INDEX IF NOT EXISTS", "ALTER TABLE")
        )  # ALTER TABLE: a later migration, run once by its version


def test_sql_server_ddl_uses_server_types_and_guards() -> None:
    statements = plan(MSSQL)
    text = "\n".join(statements)
    for stmt in statements:
        assert stmt.startswith(
            (
                "IF OBJECT_ID(N'dbo.",
                "IF NOT EXISTS (SELECT 1 FROM sys.indexes",
                "IF COL_LENGTH(N'dbo.",
            )
        )
    assert "VARBINARY(MAX)" in text  # vectors stored as float32 bytes
    assert "BIGINT IDENTITY(1,1) PRIMARY KEY" in text
    assert "DATETIME2(3)" in text
    assert "AUTOINCREMENT" not in text and " BLOB" not in text
    # Unique keys in SQL Server cannot use NVARCHAR(MAX) columns.
    embeddings = next(s for s in statements if "dbo.embeddings " in s)
    assert "entity_id NVARCHAR(256) NOT NULL" in embeddings


def test_sql_server_migration_takes_an_application_lock() -> None:
    from shared.db.migrate import MSSQL_LOCK

    assert "sp_getapplock" in MSSQL_LOCK and "@LockOwner = N'Transaction'" in MSSQL_LOCK


def test_upsert_text_per_dialect() -> None:
    cols, key = ("a", "b", "c"), ("a",)
    assert SQLITE.upsert("t", cols, key, ("c",)) == (
        "INSERT INTO t (a, b, c) VALUES (?, ?, ?) ON CONFLICT (a) DO UPDATE SET c = excluded.c"
    )
    merge = MSSQL.upsert("t", cols, key, ("c",))
    assert merge.startswith("MERGE dbo.t WITH (HOLDLOCK) AS target USING (SELECT ? AS a, ? AS b")
    assert "WHEN MATCHED THEN UPDATE SET target.c = src.c" in merge
    assert merge.endswith("WHEN NOT MATCHED THEN INSERT (a, b, c) VALUES (src.a, src.b, src.c);")
    assert merge.count("?") == 3
    assert "DO NOTHING" in SQLITE.upsert("t", cols, key)
    assert "WHEN MATCHED" not in MSSQL.upsert("t", cols, key)


def test_limit_text_per_dialect() -> None:
    assert SQLITE.limit("SELECT x FROM t", "x").endswith("ORDER BY x LIMIT ?")
    assert MSSQL.limit("SELECT x FROM t", "x").endswith(
        "ORDER BY x OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY"
    )


@pytest.mark.parametrize("driver", ["sqlite3", "pyodbc"])
def test_version_id_columns_keep_their_rows_key_and_cascade(tmp_path: Path, driver: str) -> None:
    """A database made before migration 3 keeps its tensors and inference rows under
    `version_id`, with model_tensors' primary key and cascading foreign key intact."""
    from shared.inference.repository import InferenceLogRepository
    from shared.registry.repository import ModelRepository

    db = open_database(connection_string(driver, tmp_path / "old.db"))
    assert apply_migrations(db, MIGRATIONS[:2]) == [1, 2]
    ts = "2024-01-01T00:00:00.000"
    db.execute(
        "INSERT INTO models (id, name, version, status, created_at, updated_at) "
        "VALUES ('v1', 'iris', 1, 'ready', ?, ?)",
        (ts, ts),
    )
    db.execute(
        "INSERT INTO model_tensors (model_id, name, dtype, shape, element_count) "
        "VALUES ('v1', 'w', 'float32', '[2]', 2)"
    )
    db.execute(
        "INSERT INTO inference_log (model_id, model_name, latency_ms, rows, outcome, "
        "created_at) VALUES ('v1', 'iris', 1.5, 3, 'succeeded', ?)",
        (ts,),
    )

    assert apply_migrations(db, MIGRATIONS[:3]) == [3]
    for table in ("model_tensors", "inference_log"):
        columns = {r["name"] for r in db.query(f"SELECT name FROM pragma_table_info('{table}')")}
        assert "version_id" in columns and "model_id" not in columns, table
    models = ModelRepository(db)
    assert [t.name for t in models.tensors("v1")] == ["w"]
    (row,) = InferenceLogRepository(db).recent("iris")
    assert (row.version_id, row.rows) == ("v1", 3)
    with pytest.raises(Exception, match="UNIQUE constraint failed: model_tensors.version_id"):
        db.execute(
            "INSERT INTO model_tensors (version_id, name, dtype, shape, element_count) "
            "VALUES ('v1', 'w', 'float32', '[2]', 2)"
        )
    assert models.delete("v1")
    assert models.tensors("v1") == []  # the foreign key still cascades
    db.close()


@pytest.mark.parametrize("driver", ["sqlite3", "pyodbc"])
def test_embeddings_made_before_metadata_keep_their_rows_with_none(
    tmp_path: Path, driver: str
) -> None:
    """Migration 4 adds `embeddings.metadata`: rows written before it keep their vectors
    and have no metadata; the search reads them as rows without any."""
    from shared.search.repository import SetRepository

    db = open_database(connection_string(driver, tmp_path / "old.db"))
    assert apply_migrations(db, MIGRATIONS[:3]) == [1, 2, 3]
    ts = "2024-01-01T00:00:00.000"
    db.execute(
        "INSERT INTO embedding_sets (model_id, embedding_type, dimension, version, updated_at) "
        "VALUES ('m', 't', 1, 1, ?)",
        (ts,),
    )
    db.execute(
        "INSERT INTO embeddings (entity_id, model_id, embedding_type, dimension, vector, "
        "created_at, updated_at) VALUES ('e', 'm', 't', 1, ?, ?, ?)",
        (b"\x00\x00\x80?", ts, ts),
    )
    assert apply_migrations(db) == [m.version for m in MIGRATIONS[3:]]
    rows = SetRepository(db).load_rows("m", "t")
    assert (rows.ids, rows.vectors, rows.metadata) == (["e"], b"\x00\x00\x80?", [None])
    db.close()


def test_sql_server_renames_only_a_column_still_under_its_old_name() -> None:
    (rename,) = [s for s in MIGRATIONS[2].statements(MSSQL) if "model_tensors" in s]
    assert rename == (
        "IF COL_LENGTH(N'dbo.model_tensors', N'model_id') IS NOT NULL "
        "AND COL_LENGTH(N'dbo.model_tensors', N'version_id') IS NULL\n"
        "EXEC sp_rename N'dbo.model_tensors.model_id', N'version_id', N'COLUMN'"
    )
