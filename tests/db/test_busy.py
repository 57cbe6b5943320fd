"""A database locked by another writer past the busy timeout: the bounded wait ends in
DatabaseBusyError (a 503 with Retry-After through the API), and nothing was changed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from shared.db.connection import DatabaseBusyError, open_database
from shared.http.errors import reply_for
from tests.support.db import migrated


def test_a_write_waits_its_busy_timeout_then_says_busy(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    db = migrated(path, busy_timeout_ms=300)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseBusyError) as err:
            db.execute(
                "INSERT INTO jobs (id, kind, status, attempts, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                ("j1", "model", "queued", 0, "2026-01-01", "2026-01-01"),
            )
        assert time.monotonic() - started >= 0.25  # it waited, boundedly, before giving up
        reply = reply_for(err.value, "test")
        assert (reply.status, reply.code, reply.headers) == (
            503,
            "database_busy",
            {"Retry-After": "2"},
        )
        assert db.query("SELECT id FROM jobs") == []  # reads still work: WAL
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    db.execute(
        "INSERT INTO jobs (id, kind, status, attempts, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        ("j1", "model", "queued", 0, "2026-01-01", "2026-01-01"),
    )
    assert [r["id"] for r in db.query("SELECT id FROM jobs")] == ["j1"]


def test_other_database_errors_are_not_called_busy(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        db.execute("INSERT INTO nowhere VALUES (1)")
