from pathlib import Path

import pytest

from shared.db.connection import DatabaseError, open_database, parse_connection


def test_sqlite_url_picks_sqlite3_and_resolves_relative_paths(tmp_path: Path) -> None:
    spec = parse_connection("sqlite:///data/x.db", base_dir=tmp_path)
    assert (spec.driver, spec.dialect.name) == ("sqlite3", "sqlite")
    assert spec.target == str(tmp_path / "data" / "x.db")


def test_odbc_sqlite_driver_picks_pyodbc_with_sqlite_dialect() -> None:
    spec = parse_connection("Driver={SQLite3};Database=/tmp/x.db")
    assert (spec.driver, spec.dialect.name) == ("pyodbc", "sqlite")


def test_sql_server_string_picks_mssql_and_redacts_password() -> None:
    spec = parse_connection(
        "Driver={ODBC Driver 18 for SQL Server};Server=tcp:x.database.windows.net,1433;"
        "Database=h;Uid=app;Pwd=s3cret;Encrypt=yes"
    )
    assert (spec.driver, spec.dialect.name) == ("pyodbc", "mssql")
    assert "s3cret" not in spec.redacted and "Pwd=***" in spec.redacted


@pytest.mark.parametrize("bad", ["", "sqlite:///", "just-a-path.db"])
def test_unusable_connection_strings_say_why(bad: str) -> None:
    with pytest.raises(DatabaseError, match="SQL_CONNECTION_STRING"):
        parse_connection(bad)


def test_sqlite3_connection_has_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    assert db.scalar("PRAGMA journal_mode") == "wal"
    assert db.scalar("PRAGMA foreign_keys") == 1
    assert db.scalar("PRAGMA busy_timeout") >= 5000


def test_pyodbc_sqlite_connection_has_foreign_keys_on(tmp_path: Path) -> None:
    db = open_database(f"Driver=SQLite3;Database={tmp_path / 'p.db'}")
    assert db.scalar("PRAGMA foreign_keys") == 1
    assert db.scalar("PRAGMA journal_mode") == "wal"


def test_transaction_rolls_back_on_error(db) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        db.execute(
            "INSERT INTO jobs (id, kind, status, attempts, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            ("j1", "model", "queued", 0, "t", "t"),
        )
        raise RuntimeError("boom")
    assert db.scalar("SELECT COUNT(*) AS n FROM jobs") == 0


def test_on_connect_hook_runs_for_sqlite3(tmp_path: Path) -> None:
    seen = []
    db = open_database(f"sqlite:///{tmp_path / 'h.db'}", on_connect=[seen.append])
    db.scalar("SELECT 1 AS one")
    assert len(seen) == 1
