"""A connection that breaks under the app (a dropped idle link, a serverless database
that paused) is replaced: the thread's next call opens a new one instead of failing
forever; a statement that can be repeated safely is, and what cannot be is a 503 with
Retry-After that says a write may not have applied."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyodbc
import pytest

from shared.db.connection import (
    Database,
    DatabaseUnavailableError,
    connection_state,
    open_database,
)
from shared.http.errors import reply_for

INSERT = (
    "INSERT INTO jobs (id, kind, status, attempts, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def _row(job_id: str) -> tuple:
    return (job_id, "model", "queued", 0, "2026-01-01", "2026-01-01")


def _break(db: Database) -> object:
    """Close this thread's connection behind the app's back, as a server would."""
    conn = db._local.conn
    conn.close()
    return conn


def test_a_read_after_the_connection_closed_runs_on_a_new_one(db: Database) -> None:
    db.execute(INSERT, _row("j1"))
    old = _break(db)
    assert [r["id"] for r in db.query("SELECT id FROM jobs")] == ["j1"]
    assert db._local.conn is not old and db._all == [db._local.conn]


def test_a_write_after_the_connection_closed_runs_once_on_a_new_one(db: Database) -> None:
    _break(db)
    assert db.execute(INSERT, _row("j2")) == 1
    db.executemany(INSERT, [_row("j3")])
    _break(db)
    db.executemany(INSERT, [_row("j4")])
    assert [r["id"] for r in db.query("SELECT id FROM jobs ORDER BY id")] == ["j2", "j3", "j4"]


def test_a_connection_lost_inside_a_transaction_is_a_503_and_the_next_call_works(
    db: Database,
) -> None:
    with pytest.raises(DatabaseUnavailableError) as err, db.transaction():
        db.execute(INSERT, _row("j5"))
        _break(db)  # the link goes mid-transaction: the transaction is gone with it
        db.execute(INSERT, _row("j6"))
    reply = reply_for(err.value, "test")
    assert (reply.status, reply.code, reply.headers) == (
        503,
        "database_unavailable",
        {"Retry-After": "5"},
    )
    assert db.query("SELECT id FROM jobs") == []  # neither row: the transaction rolled back
    db.execute(INSERT, _row("j7"))
    with db.transaction():  # transactions work again on the new connection
        db.execute(INSERT, _row("j8"))
    assert [r["id"] for r in db.query("SELECT id FROM jobs ORDER BY id")] == ["j7", "j8"]


def test_a_database_that_cannot_be_reached_is_a_503_that_names_no_server(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    db = open_database(f"sqlite:///{blocker / 'x.db'}")
    with pytest.raises(DatabaseUnavailableError) as err:
        db.query("SELECT 1")
    reply = reply_for(err.value, "test")
    assert reply.status == 503 and "not-a-directory" not in reply.message
    assert str(blocker) in err.value.reason  # for the log and the keyed readiness details


@pytest.mark.parametrize(
    ("exc", "state"),
    [
        (sqlite3.ProgrammingError("Cannot operate on a closed database."), "closed"),
        (pyodbc.ProgrammingError("Attempt to use a closed connection."), "closed"),
        (
            pyodbc.OperationalError(
                "08S01",
                "[08S01] [Microsoft][ODBC Driver 18 for SQL Server]TCP Provider: "
                "Error code 0x2746 (10054) (SQLExecDirectW)",
            ),
            "lost",
        ),
        (
            pyodbc.Error(
                "42000",
                "[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Database 'h' "
                "on server 'x' is not currently available. (40613) (SQLDriverConnect)",
            ),
            "lost",
        ),
        (sqlite3.OperationalError("vector_dot_product: b: dimension 233 does not match"), None),
        (pyodbc.IntegrityError("23000", "[23000] UNIQUE constraint failed (19)"), None),
        (ValueError("08S01"), None),
    ],
)
def test_which_driver_errors_mean_the_connection_is_gone(exc: Exception, state: str) -> None:
    assert connection_state(exc) == state
