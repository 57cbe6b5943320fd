"""Versioned migrations, applied at start; safe to run twice and from two processes.

SQLite takes the database write lock (BEGIN IMMEDIATE) before reading the version;
SQL Server takes an exclusive application lock (sp_getapplock) in the transaction.
Either way a second process waits, then finds the work done.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from shared.db.connection import Database
from shared.db.dialects import Column, Dialect, Table
from shared.db.schema import MIGRATIONS, Migration

log = logging.getLogger(__name__)

SCHEMA_VERSION = Table(
    "schema_version",
    (
        Column("version", "int", nullable=False),
        Column("name", "name", nullable=False),
        Column("applied_at", "ts", nullable=False),
    ),
    primary_key=("version",),
)

MSSQL_LOCK = (
    "DECLARE @r INT; EXEC @r = sp_getapplock @Resource = N'hartonomous_schema', "
    "@LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 60000; "
    "IF @r < 0 THROW 50001, N'could not take the schema migration lock', 1;"
)


def plan(dialect: Dialect, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[str]:
    """Every statement a fresh database runs, in order (also what the text tests read)."""
    out = [dialect.create_table(SCHEMA_VERSION)]
    for m in migrations:
        out.extend(m.statements(dialect))
    return out


def current_version(db: Database) -> int:
    return int(db.scalar("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version") or 0)


def apply_migrations(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply what is missing; returns the versions applied by this call."""
    applied: list[int] = []
    with db.transaction() as conn:
        if db.dialect.name == "mssql":
            conn.execute(MSSQL_LOCK)
        conn.execute(db.dialect.create_table(SCHEMA_VERSION))
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        have = int(row[0])
        for m in migrations:
            if m.version <= have:
                continue
            for stmt in m.statements(db.dialect):
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (m.version, m.name, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]),
            )
            applied.append(m.version)
    if applied:
        log.info("applied schema migrations %s", applied)
    return applied


def main() -> None:
    """`python -m shared.db.migrate`: apply migrations to the configured database."""
    from shared.config import ROOT, get_settings
    from shared.db.connection import open_database

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    db = open_database(get_settings().sql_connection, base_dir=ROOT)
    apply_migrations(db)
    print(f"schema version {current_version(db)} ({db.spec.redacted})")


if __name__ == "__main__":
    main()
