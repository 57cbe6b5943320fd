"""Connections: the dialect and driver are chosen from the connection string.

- `sqlite:///path/to/file.db` (or `sqlite:///:memory:`): embedded SQLite through `sqlite3`.
- An ODBC string whose driver names SQLite (`Driver=SQLite3;Database=...`): SQLite
  through pyodbc, so the pyodbc path runs for real on any machine.
- Any other ODBC string (`Driver={ODBC Driver 18 for SQL Server};Server=...`): SQL Server.

pyodbc needs unixODBC at import time, so it is imported only for ODBC strings.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from shared.db import function_errors
from shared.db.dialects import MSSQL, SQLITE, Dialect
from shared.db.tracing import sql_span
from shared.errors import ConfigurationError, HartonomousError, UnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000


class DatabaseError(HartonomousError):
    """The database could not do what was asked; the message says why. Of no more
    specific kind it is an internal failure (a logged 500)."""

    code = "database_error"


class DatabaseConfigurationError(ConfigurationError, DatabaseError):
    """``SQL_CONNECTION_STRING`` cannot be used (routes that need SQL answer 503
    ``not_configured`` naming the setting, never its value)."""

    field = "SQL_CONNECTION_STRING"


class DatabaseUnavailableError(UnavailableError, DatabaseError):
    """The database did not answer, or the connection broke (a paused serverless
    database resuming, a dropped idle connection): the next call opens a new one."""

    code = "database_unavailable"
    retry_after = 5


class DatabaseBusyError(UnavailableError, DatabaseError):
    """Locked by other writers past the busy timeout (SQLite), or a lock timeout or
    deadlock victim (SQL Server): nothing was changed, and the same call later works."""

    code = "database_busy"
    retry_after = 2

    def __init__(self) -> None:
        super().__init__(
            "the database is busy with other writers; nothing was changed: try again shortly"
        )


_BUSY = re.compile(r"database is locked|database is busy|\b1205\b|deadlock|HYT00|lock request time")


@contextmanager
def busy_as_unavailable() -> Iterator[None]:
    """A lock wait that ran out (the busy timeout is the bounded retry) becomes
    DatabaseBusyError: a 503 with Retry-After, never a 500."""
    try:
        yield
    except DatabaseBusyError:
        raise
    except Exception as exc:
        if _BUSY.search(str(exc)) and type(exc).__name__ in _DRIVER_ERRORS:
            raise DatabaseBusyError() from exc
        raise


_DRIVER_ERRORS = {"OperationalError", "Error", "DatabaseError"}

#: What a driver says when the connection is gone before the statement was sent: safe
#: to run the statement again on a new connection.
_CLOSED = re.compile(r"closed (database|connection)|connection (is|was) closed", re.I)
#: SQL Server and ODBC: the link broke, or the database is not available now
#: (SQLSTATE class 08; 40613 database unavailable, e.g. resuming from auto-pause; 40197,
#: 40501 service busy; 10053/10054 connection reset; 233 no process at the other end).
_LOST_STATE = re.compile(r"^08[0-9A-Z]{3}$")
_LOST_CODE = re.compile(r"\((40613|40197|40501|49918|10053|10054|10060|233)\)")


def connection_state(exc: BaseException) -> str | None:
    """``"closed"`` when the connection was unusable before the statement ran, ``"lost"``
    when it broke during it (whether a write applied is unknown), None for any other
    error (the connection is still good)."""
    if type(exc).__name__ not in _DRIVER_ERRORS | {"ProgrammingError", "InterfaceError"}:
        return None
    text = " ".join(str(a) for a in getattr(exc, "args", ()))
    if _CLOSED.search(text):
        return "closed"
    state = str(exc.args[0]) if getattr(exc, "args", None) else ""
    if _LOST_STATE.match(state) or _LOST_CODE.search(text):
        return "lost"
    return None


def _lost(state: str) -> DatabaseUnavailableError:
    if state == "closed":
        return DatabaseUnavailableError("the database connection was closed; try again")
    return DatabaseUnavailableError(
        "lost the connection to the database during the call (a write may or may not "
        "have been applied); try again shortly"
    )


@dataclass(frozen=True)
class ConnectionSpec:
    driver: str  # "sqlite3" or "pyodbc"
    dialect: Dialect
    target: str  # file path for sqlite3, the ODBC string for pyodbc

    @property
    def system(self) -> str:
        """`db.system` for spans: sqlite or mssql."""
        return "sqlite" if self.dialect is SQLITE else "mssql"

    @property
    def database_name(self) -> str | None:
        """The database's name for spans: the SQLite file's name, or `Database=`."""
        if self.driver == "sqlite3":
            return Path(self.target).name
        found = re.search(r"(?i)(?:^|;)\s*(?:database|initial catalog)\s*=\s*([^;]*)", self.target)
        return Path(found.group(1).strip()).name if found else None

    @property
    def redacted(self) -> str:
        """The target with any password hidden, for logs and errors."""
        return re.sub(r"(?i)(pwd|password)=[^;]*", r"\1=***", self.target)


def parse_connection(value: str, base_dir: Path | None = None) -> ConnectionSpec:
    value = value.strip()
    if value.lower().startswith("sqlite:///"):
        raw = value[len("sqlite:///") :]
        if not raw:
            raise DatabaseConfigurationError("SQL_CONNECTION_STRING: sqlite:/// needs a file path")
        if raw == ":memory:":
            return ConnectionSpec("sqlite3", SQLITE, raw)
        path = Path(raw)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return ConnectionSpec("sqlite3", SQLITE, str(path))
    if "=" not in value:
        raise DatabaseConfigurationError(
            "SQL_CONNECTION_STRING: expected sqlite:///<path> or an ODBC connection string"
        )
    driver = re.search(r"(?i)(?:^|;)\s*driver\s*=\s*\{?([^;}]*)", value)
    if driver and "sqlite" in driver.group(1).lower():
        return ConnectionSpec("pyodbc", SQLITE, value)
    return ConnectionSpec("pyodbc", MSSQL, value)


def _connect_sqlite3(path: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Any:
    import sqlite3

    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    _retry_while_locked(lambda: _use_wal(conn))
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _use_wal(conn: Any) -> None:
    # WAL is a property of the file: set once, every later connection just sees it.
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")


def _retry_while_locked(action: Callable[[], Any]) -> Any:
    """Switching a new file to WAL needs an exclusive lock, and SQLite may answer "database
    is locked" at once instead of waiting when another process is doing the same: retry
    with backoff for up to the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    while True:
        try:
            return action()
        except Exception as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _connect_pyodbc(spec: ConnectionSpec) -> Any:
    try:
        import pyodbc
    except ImportError as exc:  # unixODBC missing
        raise DatabaseError(f"pyodbc cannot load (is unixODBC installed?): {exc}") from exc
    auth = _entra_kwargs(spec.target)
    target = spec.target
    if spec.dialect is SQLITE:
        # Debian's SQLite3 ODBC driver: busy timeout, foreign keys, WAL, as for sqlite3.
        db = re.search(r"(?i)database=([^;]*)", target)
        if db:
            Path(db.group(1)).parent.mkdir(parents=True, exist_ok=True)
        extras = {"Timeout": str(BUSY_TIMEOUT_MS), "FKSupport": "1", "JournalMode": "WAL"}
        for key, val in extras.items():
            if not re.search(rf"(?i)(^|;)\s*{key}\s*=", target):
                target = target.rstrip(";") + f";{key}={val}"
        return _retry_while_locked(lambda: pyodbc.connect(target, autocommit=True, **auth))
    return pyodbc.connect(target, autocommit=False, **auth)


def _entra_kwargs(target: str) -> dict[str, Any]:
    """Entra access token for the login when SQL_CREDENTIAL asks for one, and the
    no-password-in-Azure rule (shared/db/entra.py)."""
    from shared.db.entra import connect_kwargs

    return connect_kwargs(target)


@contextmanager
def _function_reasons() -> Iterator[None]:
    """Give sqlite3's "user-defined function raised exception" the reason the Python
    function recorded (shared.db.function_errors), e.g. ``vector_dot_product: b: ...``."""
    function_errors.clear()
    try:
        yield
    except Exception as exc:
        import sqlite3

        reason = function_errors.take()
        generic = isinstance(exc, sqlite3.OperationalError) and function_errors.GENERIC.search(
            str(exc)
        )
        if reason is None or not generic:
            raise
        raise sqlite3.OperationalError(reason) from exc


class Database:
    """Thread-local connections and transactions over one connection string."""

    def __init__(
        self,
        spec: ConnectionSpec,
        on_connect: Sequence[Callable[[Any], None]] = (),
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        """`on_connect` hooks run on each new sqlite3 connection (e.g. to register the
        vector SQL functions); pyodbc connections cannot host Python functions.
        `busy_timeout_ms` bounds how long SQLite waits on other writers' locks."""
        self.spec = spec
        self.busy_timeout_ms = busy_timeout_ms
        self._on_connect = tuple(on_connect)
        self.dialect = spec.dialect
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._system = spec.system
        self._database_name = spec.database_name

    # -- connections -----------------------------------------------------------------
    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                if self.spec.driver == "sqlite3":
                    conn = _connect_sqlite3(self.spec.target, self.busy_timeout_ms)
                    for hook in self._on_connect:
                        hook(conn)
                else:
                    conn = _connect_pyodbc(self.spec)
            except HartonomousError:  # a setting refused (shared.db.entra), or ours
                raise
            except Exception as exc:
                # The caller hears that the database did not answer; the log and the
                # readiness details (function key) say which and why.
                why = f"cannot connect to {self.spec.redacted}: {exc}"
                log.warning("%s", why)
                raise DatabaseUnavailableError(
                    "cannot connect to the database; try again shortly", reason=why
                ) from exc
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(Exception):  # closing; nothing to report
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    def _discard(self) -> None:
        """Forget this thread's broken connection; the next call opens a new one."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        self._local.depth = 0
        if conn is None:
            return
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(Exception):  # it is broken already
            conn.close()

    def _statement(self, run: Callable[[], T], *, read: bool) -> T:
        """Run one statement. When this thread's connection turns out to be broken it is
        dropped; outside a transaction the statement runs once more on a new connection
        if that is safe (the old one was closed before it ran, or it only reads). What
        is left is a DatabaseUnavailableError: a 503 with Retry-After, never a 500 on
        every later call of this thread."""
        outer = getattr(self._local, "depth", 0) == 0
        for attempt in (1, 2):
            try:
                return run()
            except Exception as exc:
                state = connection_state(exc)
                if state is None:
                    raise
                self._discard()
                if attempt == 2 or not (outer and (read or state == "closed")):
                    raise _lost(state) from exc
                log.warning("database connection %s; running the statement on a new one", state)
        raise AssertionError("unreachable: the second attempt returns or raises")

    @property
    def explicit_begin(self) -> bool:
        # SQLite (both drivers) runs in autocommit and takes the write lock up front
        # with BEGIN IMMEDIATE, so two writers queue instead of failing on upgrade.
        return self.dialect is SQLITE

    @contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Any]:
        """A unit of work; nested calls join the outer transaction.

        `readonly` on SQLite takes a deferred snapshot instead of the write lock.
        """
        if getattr(self._local, "depth", 0) > 0:
            joined = self._local.conn
            self._local.depth += 1
            try:
                yield joined
            finally:
                if self._local.conn is joined:  # else dropped as broken: depth is 0
                    self._local.depth -= 1
            return

        def begin() -> Any:
            conn = self._connection()
            if self.explicit_begin:
                with busy_as_unavailable():
                    conn.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")
            return conn

        conn = self._statement(begin, read=True)  # nothing ran yet: safe to repeat
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            self._local.depth = 0
            if getattr(self._local, "conn", None) is conn:  # not dropped as broken
                try:
                    conn.execute("ROLLBACK") if self.explicit_begin else conn.rollback()
                except Exception as exc:
                    if connection_state(exc) is None:
                        raise
                    self._discard()  # the server ended the transaction with the link
            raise
        self._local.depth = 0
        try:
            conn.execute("COMMIT") if self.explicit_begin else conn.commit()
        except Exception as exc:
            state = connection_state(exc)
            if state is None:
                raise
            self._discard()
            raise _lost(state) from exc

    # -- statements ------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the affected row count."""

        def run() -> int:
            with self.transaction() as conn, _function_reasons():
                return conn.execute(sql, tuple(params)).rowcount

        with sql_span(self._system, self._database_name, sql), busy_as_unavailable():
            return self._statement(run, read=False)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return

        def run() -> None:
            with self.transaction() as conn, _function_reasons():
                cur = conn.cursor()
                if self.spec.driver == "pyodbc" and self.dialect is MSSQL:
                    cur.fast_executemany = True
                cur.executemany(sql, [tuple(r) for r in rows])

        with sql_span(self._system, self._database_name, sql), busy_as_unavailable():
            self._statement(run, read=False)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        def run() -> tuple[list[str], list[Any]]:
            conn = self._connection()
            cur = conn.execute(sql, tuple(params))
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
            if self.dialect is MSSQL and self._local.depth == 0:
                conn.commit()  # end the implicit read transaction
            return names, rows

        with (
            sql_span(self._system, self._database_name, sql),
            busy_as_unavailable(),
            _function_reasons(),
        ):
            names, rows = self._statement(run, read=True)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.query_one(sql, params)
        return None if row is None else next(iter(row.values()))


def open_database(
    connection: str,
    base_dir: Path | None = None,
    on_connect: Sequence[Callable[[Any], None]] = (),
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> Database:
    return Database(parse_connection(connection, base_dir), on_connect, busy_timeout_ms)
