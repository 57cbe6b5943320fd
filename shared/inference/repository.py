"""One row per inference call, for analytics (latency, rows, confidence, outcome).

Rows are written off the caller's time. ``add`` puts the row on the process's one bounded
queue and returns; a background thread (``LogWriter``) waits ``LINGER_SECONDS`` after the
first row, then inserts everything queued in transactions of up to ``BATCH_ROWS`` rows.
The row's content is fixed when it is queued (its ``created_at`` is the call's end, as if
written then), so only when it becomes visible changes:

- Readers in this process see every row queued before they read: the reads here, the
  protocol's statistics and the analytics reader call ``flush_inference_log()`` first.
- A normal exit and a SIGTERM (``shared.process_exit``) flush what is queued, waiting up
  to ``EXIT_SECONDS``; a process killed outright (SIGKILL, ``os._exit``) loses what was
  queued in its last ``LINGER_SECONDS``.
- A full queue (``QUEUE_ROWS``, reached only when the database cannot keep up) drops the
  new row, counts it (``LogWriter.dropped``) and logs one warning per episode: the log
  is analytics, and a caller must not wait for it.
- A failed insert (database down, locked past its timeout) logs a warning with the
  number of rows lost (``LogWriter.failed``); the calls they describe were served.

An in-memory SQLite database is one per connection, and so per thread: its rows are
written on the caller's time instead.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared import process_exit, telemetry
from shared.db.connection import Database
from shared.db.dialects import SQLITE
from shared.db.timestamps import stamp, to_iso

log = logging.getLogger(__name__)

QUEUE_ROWS = 10_000  # rows waiting at most; beyond it new rows are dropped (counted)
BATCH_ROWS = 500  # rows per insert transaction
LINGER_SECONDS = 0.05  # after a first row, wait this long for more before writing
FLUSH_SECONDS = 10.0  # how long a reader waits for queued rows at most
EXIT_SECONDS = 10.0  # how long the exit flush waits at most

_INSERT = (
    "INSERT INTO inference_log (version_id, model_name, model_version, latency_ms, rows, "
    "confidence, outcome, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_MORE_VALUES = ", (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SQLITE_ROWS = 100  # rows per SQLite statement: 900 parameters, under the old 999 limit

#: An inference_log row in insert order: version_id, model_name, model_version,
#: latency_ms, rows, confidence, outcome, error, created_at (stored text, or epoch ns).
Row = tuple[Any, ...]


@dataclass(frozen=True)
class InferenceRecord:
    model_name: str
    model_version: int | None
    latency_ms: float
    rows: int
    outcome: str
    confidence: float | None = None
    version_id: str | None = None  # models.id of the version that ran
    error: str | None = None
    created_at: str | None = None


def _stamped(row: Row) -> Row:
    return row if isinstance(row[8], str) else (*row[:8], stamp(row[8]))


def _in_memory(db: Database) -> bool:
    return db.spec.driver == "sqlite3" and db.spec.target == ":memory:"


class InferenceLogRepository:
    def __init__(self, db: Database, *, background: bool | None = None) -> None:
        """``background`` False writes each row on the caller's time; by default rows go
        through the process's LogWriter unless the database is in-memory SQLite."""
        self.db = db
        self.background = not _in_memory(db) if background is None else background

    def add(self, rec: InferenceRecord) -> None:
        """Queue one row (see the module docstring); ``created_at`` defaults to now."""
        self.add_row(
            (
                rec.version_id,
                rec.model_name,
                rec.model_version,
                rec.latency_ms,
                rec.rows,
                rec.confidence,
                rec.outcome,
                rec.error,
                rec.created_at or time.time_ns(),
            )
        )

    def add_row(self, row: Row) -> None:
        """``add`` for a ready tuple (the inference hot path makes no record object)."""
        if self.background:
            log_writer().put(self, row)
        else:
            self.insert([row])

    def insert(self, rows: Sequence[Row]) -> None:
        """Write rows now, in one transaction (what the writer does with a batch)."""
        if not rows:
            return
        if self.db.dialect is not SQLITE:
            # pyodbc's fast_executemany sends the batch in one round trip
            self.db.executemany(_INSERT, [_stamped(r) for r in rows])
            return
        # SQLite: multi-row statements. executemany steps once per row and lets go of the
        # GIL around each step; a writer thread doing that hands the GIL back and forth
        # with the request threads row by row, which costs them more than the insert.
        # A chunk at a time, so the writer never holds the GIL for long.
        with self.db.transaction():
            for at in range(0, len(rows), _SQLITE_ROWS):
                chunk = rows[at : at + _SQLITE_ROWS]
                self.db.execute(
                    _INSERT + _MORE_VALUES * (len(chunk) - 1),
                    [value for r in chunk for value in _stamped(r)],
                )

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait until every row queued so far is written; False if ``timeout`` ran out."""
        return flush_inference_log(timeout)

    def recent(self, model_name: str, limit: int = 100) -> list[InferenceRecord]:
        self.flush()
        sql = self.db.dialect.limit(
            "SELECT version_id, model_name, model_version, latency_ms, rows, confidence, outcome, "
            "error, created_at FROM inference_log WHERE model_name = ?",
            "created_at DESC, id DESC",
        )
        return [
            InferenceRecord(
                model_name=r["model_name"],
                model_version=r["model_version"],
                latency_ms=float(r["latency_ms"]),
                rows=int(r["rows"]),
                outcome=r["outcome"],
                confidence=r["confidence"],
                version_id=r["version_id"],
                error=r["error"],
                created_at=to_iso(r["created_at"]),
            )
            for r in self.db.query(sql, (model_name, limit))
        ]

    def summary(self, model_name: str) -> dict[str, Any]:
        self.flush()
        row = self.db.query_one(
            "SELECT COUNT(*) AS calls, SUM(rows) AS total_rows, AVG(latency_ms) AS mean_ms, "
            "MAX(latency_ms) AS max_ms, AVG(confidence) AS mean_confidence, "
            "SUM(CASE WHEN outcome = ? THEN 1 ELSE 0 END) AS failures "
            "FROM inference_log WHERE model_name = ?",
            ("failed", model_name),
        )
        assert row is not None
        return {
            "calls": int(row["calls"] or 0),
            "rows": int(row["total_rows"] or 0),
            "mean_latency_ms": row["mean_ms"],
            "max_latency_ms": row["max_ms"],
            "mean_confidence": row["mean_confidence"],
            "failures": int(row["failures"] or 0),
        }

    def stats_by_version(self, model_name: str) -> list[dict[str, Any]]:
        """Per version and outcome: calls, rows, total latency (ms), last call (epoch ms),
        for the protocol's statistics extension."""
        self.flush()
        last = self.db.dialect.epoch_ms("MAX(created_at)")
        rows = self.db.query(
            f"SELECT model_version, outcome, COUNT(*) AS calls, SUM(rows) AS total_rows, "  # noqa: S608
            f"SUM(latency_ms) AS total_ms, {last} AS last_ms FROM inference_log "
            "WHERE model_name = ? GROUP BY model_version, outcome",
            (model_name,),
        )
        return [
            {
                "version": r["model_version"],
                "outcome": r["outcome"],
                "calls": int(r["calls"]),
                "rows": int(r["total_rows"] or 0),
                "total_ms": float(r["total_ms"] or 0.0),
                "last_ms": int(r["last_ms"] or 0),
            }
            for r in rows
        ]


class LogWriter:
    """The background writer of inference log rows (one per process: ``log_writer()``).

    Rows of any repository go on one queue; the thread writes each repository's rows
    through it. The thread starts with the first row and waits for work from then on.
    """

    def __init__(
        self,
        *,
        capacity: int = QUEUE_ROWS,
        batch_rows: int = BATCH_ROWS,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        if capacity < 1 or batch_rows < 1 or linger_seconds < 0:
            raise ValueError("capacity and batch_rows must be >= 1, linger_seconds >= 0")
        self.capacity = capacity
        self.batch_rows = batch_rows
        self.linger_seconds = linger_seconds
        # (repository, row), or (None, Event) for a flush: set once all before it is written
        self._queue: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._hurry = threading.Event()  # a flush is waiting: stop lingering
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._full = False  # dropping rows since the last warning
        self.written = 0  # rows inserted
        self.dropped = 0  # rows not queued: the queue was full
        self.failed = 0  # rows whose insert failed

    def put(self, repo: InferenceLogRepository, row: Row) -> None:
        """Queue one row; never blocks (a full queue drops it, see the module docstring)."""
        if self._queue.qsize() >= self.capacity:
            self._drop()
            return
        self._queue.put((repo, row))
        if self._thread is None:
            self._start()

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait until the rows queued before this call are written (or failed)."""
        if self._thread is None:
            return True  # nothing was ever queued
        done = threading.Event()
        self._queue.put((None, done))
        self._hurry.set()
        return done.wait(timeout)

    def _drop(self) -> None:
        with self._lock:
            self.dropped += 1
            first = not self._full
            self._full = True
        if first:
            log.warning(
                "inference log queue full (%d rows waiting): dropping rows until the "
                "database catches up",
                self.capacity,
            )

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="inference-log-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        with telemetry.untraced():  # one batch serves many requests: no span of its own
            while True:
                try:
                    self._cycle()
                except Exception:  # the loop must outlive any one failure
                    log.exception("inference log writer")

    def _cycle(self) -> None:
        repo, item = self._queue.get()
        if repo is None:
            item.set()  # all before it was written by earlier cycles
            return
        if self.linger_seconds:
            self._hurry.wait(self.linger_seconds)
        self._hurry.clear()
        batch: list[tuple[Any, Row]] = [(repo, item)]
        while True:
            flushed: threading.Event | None = None
            while len(batch) < self.batch_rows:
                try:
                    repo, item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if repo is None:
                    flushed = item
                    break
                batch.append((repo, item))
            more = len(batch) >= self.batch_rows
            self._write(batch)
            if flushed is not None:
                flushed.set()
            if not more:
                return
            batch = []

    def _write(self, batch: list[tuple[Any, Row]]) -> None:
        if not batch:
            return
        start = 0
        while start < len(batch):  # each repository's run of rows in one transaction
            repo = batch[start][0]
            end = start
            while end < len(batch) and batch[end][0] is repo:
                end += 1
            rows = [row for _, row in batch[start:end]]
            try:
                repo.insert(rows)
                self.written += len(rows)
            except Exception:  # analytics: the calls were served; say what was lost
                self.failed += len(rows)
                log.warning("inference log write failed: %d row(s) lost", len(rows), exc_info=True)
            start = end
        if self._full:
            with self._lock:
                self._full = False
                dropped = self.dropped
            log.warning("inference log queue drained; %d row(s) dropped in all so far", dropped)


_writer: LogWriter | None = None
_writer_lock = threading.Lock()


def log_writer() -> LogWriter:
    """The process's LogWriter (made on first use; a forked child makes its own)."""
    global _writer
    writer = _writer
    if writer is None:
        with _writer_lock:
            if _writer is None:
                _writer = LogWriter()
            writer = _writer
    return writer


def flush_inference_log(timeout: float = FLUSH_SECONDS) -> bool:
    """Wait until every inference log row queued in this process so far is written:
    for a reader of ``inference_log`` in this process. False if ``timeout`` ran out."""
    writer = _writer
    return True if writer is None else writer.flush(timeout)


def _flush_at_exit() -> None:
    if not flush_inference_log(EXIT_SECONDS):
        log.warning("inference log: rows still queued after %.0f s at exit", EXIT_SECONDS)


def _forget_in_child() -> None:
    global _writer
    _writer = None  # the parent's thread is not in the child; its rows are the parent's


process_exit.on_exit(_flush_at_exit)
os.register_at_fork(after_in_child=_forget_in_child)
