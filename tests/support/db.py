"""Databases for tests: a migrated SQLite file through either of the app's SQLite paths.

The `db` fixture (tests/conftest.py) is `migrated(...)` on a fresh file, through sqlite3;
a test that must hold on both paths says `@BOTH_DRIVERS` (or `pytestmark = BOTH_DRIVERS`)
and runs once through sqlite3 and once through pyodbc with Debian's SQLite3 ODBC driver,
so the pyodbc code runs for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.db.connection import BUSY_TIMEOUT_MS, Database, open_database
from shared.db.migrate import apply_migrations

DRIVERS = ("sqlite3", "pyodbc")

#: Run the test on both SQLite paths: its `db` is opened through each driver in turn.
BOTH_DRIVERS = pytest.mark.parametrize("db", DRIVERS, indirect=True)


def connection_string(driver: str, path: Path) -> str:
    """The connection string that opens SQLite file `path` through `driver`."""
    if driver == "sqlite3":
        return f"sqlite:///{path}"
    return f"Driver=SQLite3;Database={path}"


def migrated(
    path: Path, driver: str = "sqlite3", *, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> Database:
    """The SQLite file at `path` opened through `driver` and migrated to the app's schema."""
    database = open_database(connection_string(driver, path), busy_timeout_ms=busy_timeout_ms)
    apply_migrations(database)
    return database
