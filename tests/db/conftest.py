"""A migrated database on each SQLite path: sqlite3, and pyodbc through Debian's
SQLite3 ODBC driver (so the pyodbc code runs for real)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.db.connection import Database, open_database
from shared.db.migrate import apply_migrations


def connection_string(driver: str, path: Path) -> str:
    if driver == "sqlite3":
        return f"sqlite:///{path}"
    return f"Driver=SQLite3;Database={path}"


@pytest.fixture(params=["sqlite3", "pyodbc"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = open_database(connection_string(request.param, tmp_path / "repo.db"))
    apply_migrations(database)
    try:
        yield database
    finally:
        database.close()
