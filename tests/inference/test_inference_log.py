"""The inference log written off the caller's time: a bounded queue, a background thread
that inserts in batches, flushes for readers and at exit (real SQLite, real threads)."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import telemetry
from shared.db.connection import Database, open_database
from shared.db.migrate import apply_migrations
from shared.db.timestamps import now, stamp
from shared.inference.repository import InferenceLogRepository, InferenceRecord, LogWriter
from shared.settings import ROOT
from tests.support.db import BOTH_DRIVERS
from tests.support.models import write_classifier


def row(name: str, n: int = 1) -> tuple:
    return (None, name, 1, 1.5, n, None, "succeeded", None, time.time_ns())


def count(db: Database, name: str) -> int:
    return int(db.scalar("SELECT COUNT(*) AS n FROM inference_log WHERE model_name = ?", (name,)))


def test_stamp_is_the_stored_text_of_that_instant() -> None:
    ns = time.time_ns()
    naive = datetime(1970, 1, 1) + timedelta(microseconds=ns // 1000)
    assert stamp(ns) == naive.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    assert stamp(1_700_000_000_999_999_999) == "2023-11-14T22:13:20.999"  # cut, not rounded
    assert stamp(0) == "1970-01-01T00:00:00.000"
    before, stamped, after = now(), stamp(time.time_ns()), now()
    assert before <= stamped <= after


@BOTH_DRIVERS  # the batch insert through sqlite3 and through pyodbc
def test_rows_wait_for_the_writer_and_a_read_flushes_them(db: Database) -> None:
    writer = LogWriter(linger_seconds=60.0)  # nothing is written unless asked
    log = InferenceLogRepository(db)
    for i in range(5):
        writer.put(log, row("m", i))
    time.sleep(0.05)  # the thread has the rows and lingers
    assert count(db, "m") == 0
    started = time.monotonic()
    assert writer.flush(timeout=30) is True
    assert time.monotonic() - started < 30  # a flush cuts the linger short
    assert count(db, "m") == 5 and writer.written == 5
    assert sorted(r["rows"] for r in db.query("SELECT rows FROM inference_log")) == [0, 1, 2, 3, 4]


def test_the_repository_reads_see_every_row_added_before(db: Database) -> None:
    log = InferenceLogRepository(db)
    assert log.background is True
    log.add(InferenceRecord("iris", 1, 2.5, 4, "succeeded", confidence=0.9))
    log.add(InferenceRecord("iris", 1, 7.5, 1, "failed", error="bad input"))
    (failed, ok) = log.recent("iris")
    assert (ok.latency_ms, ok.rows, ok.confidence) == (2.5, 4, 0.9)
    assert (failed.outcome, failed.error) == ("failed", "bad input")
    log.add(InferenceRecord("iris", 1, 1.0, 2, "succeeded"))
    assert log.summary("iris")["calls"] == 3
    log.add(InferenceRecord("iris", 2, 1.0, 2, "succeeded"))
    assert {s["version"] for s in log.stats_by_version("iris")} == {1, 2}


def test_the_analytics_reader_flushes_first(db: Database) -> None:
    from shared.analytics.reader import read_inference

    log = InferenceLogRepository(db)
    for i in range(3):
        log.add_row(row("read-me", i + 1))
    events = read_inference(db, names=["read-me"])
    assert len(events) == 3 and int(events.events["rows"].sum()) == 6


def test_batches_are_written_in_chunks_of_batch_rows(db: Database) -> None:
    writer = LogWriter(batch_rows=7, linger_seconds=60.0)
    log = InferenceLogRepository(db)
    for i in range(30):
        writer.put(log, row("chunks", i))
    assert writer.flush(timeout=30) and count(db, "chunks") == 30 and writer.written == 30


@BOTH_DRIVERS
def test_an_insert_of_many_rows_keeps_every_row_and_value(db: Database) -> None:
    """SQLite takes a batch as multi-row statements of a hundred rows: 250 cross two."""
    log = InferenceLogRepository(db, background=False)
    ns = time.time_ns()
    rows = [("v", "many", i, i / 4, i, i / 1000, "succeeded", None, ns) for i in range(250)]
    rows[-1] = (None, "many", None, 0.5, 0, None, "failed", "it broke", "2026-01-02T03:04:05.678")
    log.insert(rows)
    stored = db.query(
        "SELECT version_id, model_version, latency_ms, rows, confidence, outcome, error, "
        "created_at FROM inference_log WHERE model_name = ? ORDER BY id",
        ("many",),
    )
    assert len(stored) == 250
    assert [(r["model_version"], r["latency_ms"], r["rows"]) for r in stored[:-1]] == [
        (i, i / 4, i) for i in range(249)
    ]
    assert stored[-1] == {
        "version_id": None,
        "model_version": None,
        "latency_ms": 0.5,
        "rows": 0,
        "confidence": None,
        "outcome": "failed",
        "error": "it broke",
        "created_at": "2026-01-02T03:04:05.678",
    }


def test_a_full_queue_drops_and_counts_and_warns_once(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    writer = LogWriter(capacity=3, linger_seconds=60.0)
    log = InferenceLogRepository(db)
    writer.put(log, row("full"))  # the thread takes it off the queue and lingers
    time.sleep(0.05)
    with caplog.at_level(logging.WARNING, logger="shared.inference.repository"):
        started = time.perf_counter()
        for _ in range(6):
            writer.put(log, row("full"))
        assert time.perf_counter() - started < 1.0  # never waits for the database
    assert writer.dropped == 3
    full = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(full) == 1
    assert writer.flush(timeout=30) and count(db, "full") == 4
    assert any("3 row(s) dropped" in r.getMessage() for r in caplog.records)


def test_a_failed_insert_is_counted_and_the_writer_carries_on(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = InferenceLogRepository(open_database(f"sqlite:///{tmp_path / 'empty.db'}"))
    good = InferenceLogRepository(db)
    writer = LogWriter(linger_seconds=60.0)
    with caplog.at_level(logging.WARNING, logger="shared.inference.repository"):
        writer.put(broken, row("lost"))  # no inference_log table there
        writer.put(broken, row("lost"))
        writer.put(good, row("kept"))
        assert writer.flush(timeout=30)
    assert (writer.failed, writer.written) == (2, 1)
    assert count(db, "kept") == 1
    assert any("2 row(s) lost" in r.getMessage() for r in caplog.records)
    writer.put(good, row("kept"))
    assert writer.flush(timeout=30) and count(db, "kept") == 2


def test_an_in_memory_database_is_written_on_the_callers_time() -> None:
    db = open_database("sqlite:///:memory:")
    apply_migrations(db)
    log = InferenceLogRepository(db)
    assert log.background is False  # each thread would see a database of its own
    log.add_row(row("mem"))
    assert count(db, "mem") == 1


def test_the_writers_inserts_make_no_spans(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """One batch serves many requests: its INSERT would be an operation of its own, with
    no request, in Application Insights. The caller's own statements keep theirs."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(telemetry, "_tracer", provider.get_tracer("test"))
    writer = LogWriter(linger_seconds=0.0)
    writer.put(InferenceLogRepository(db), row("traced"))
    assert writer.flush(timeout=30) and count(db, "traced") == 1
    names = [s.name for s in spans.get_finished_spans()]
    assert "INSERT inference_log" not in names
    assert "SELECT inference_log" in names  # the test's own count, on this thread


EXIT_SCRIPT = """
import os
import signal
import sys
import time
from pathlib import Path

from shared import process_exit
from shared.inference import repository
from shared.inference.protocol.types import InferRequest
from tests.support.db import migrated
from tests.support.inference import build_harness

folder, calls, ending = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
repository._writer = repository.LogWriter(linger_seconds=600.0)  # queued until exit
harness = build_harness(migrated(folder / "exit.db"), folder)
harness.register("iris", folder / "iris.onnx")
good = [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]
for _ in range(calls):
    harness.service.infer("iris", None, InferRequest(inputs=good))
try:
    harness.service.infer("iris", None, InferRequest(inputs=[{**good[0], "shape": [4]}]))
except Exception:
    pass
print(repository.log_writer().written, flush=True)
if ending == "sigterm":  # as a host stops its worker
    assert process_exit.install_sigterm()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)  # the signal ends the process before this does
"""


@pytest.mark.parametrize("ending", ["exit", "sigterm"])
def test_rows_queued_at_a_normal_exit_or_a_sigterm_are_written(tmp_path: Path, ending: str) -> None:
    write_classifier(tmp_path)
    # well inside the child's 600 s linger: only the exit flush can have cut it short
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(tmp_path), "25", ending],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # A SIGTERM still ends the process as SIGTERM does, after the flush.
    assert done.returncode == (0 if ending == "exit" else -signal.SIGTERM), done.stderr
    assert done.stdout.strip() == "0"  # nothing was written before the exit
    with sqlite3.connect(tmp_path / "exit.db") as conn:
        outcomes = dict(
            conn.execute("SELECT outcome, COUNT(*) FROM inference_log GROUP BY outcome")
        )
        stored = conn.execute("SELECT MIN(created_at) FROM inference_log").fetchone()[0]
    assert outcomes == {"succeeded": 25, "failed": 1}
    assert datetime.fromisoformat(stored) > datetime.now(UTC).replace(tzinfo=None) - timedelta(
        minutes=5
    )
