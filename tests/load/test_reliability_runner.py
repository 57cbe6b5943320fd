"""The reliability runner's pieces at tiny scale, against the real local host: seconds of
locust, 50 queue messages. The accounting must see every message once, and must say so
when one is lost or run twice."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability import hostlog, queue_accounting, report
from reliability.host_memory import CacheBounds, MemoryFigures, rss
from reliability.load import run_locust
from reliability.seed import register_model, seed_search
from reliability.stack import Stack, db_path, running_stack
from reliability.suites import run_suites
from tests.support.host import HOST_LOGS

DIM = 384


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("reliability")
    seed_search(db_path(tmp), 2_000, DIM)
    with running_stack(tmp, search_cache_bytes=64 << 20) as running:
        HOST_LOGS.append(running.host.log_path)  # checked for secrets with the others
        yield running


@pytest.mark.e2e
def test_locust_reports_every_route_with_no_errors(stack: Stack) -> None:
    target = register_model(stack)
    load = run_locust(
        stack.origin,
        key=stack.key,
        dim=DIM,
        target=target,
        # Locust's run time counts from before its own slow start (gevent's patching):
        # on a busy machine 3 s left half a second of load and no completed request in
        # its CSV. 6 s leaves seconds of it.
        seconds=6,
        users=3,
        out_dir=stack.tmp,
    )
    routes = {r.route: r for r in load.routes}
    assert set(routes) == {
        "POST /api/vectors/cosine",
        "POST /api/search",
        "POST /api/v2/models/{name}/infer",
    }
    for figures in routes.values():
        assert figures.requests > 0 and figures.rps > 0
        assert figures.failures == 0, figures.errors
        assert 0 <= figures.p50_ms <= figures.p99_ms  # NaN (no samples) fails too
    rendered = report.table(report.load_rows(load))
    assert "`POST /api/search`" in rendered and "0 errors" in rendered
    assert "MISSED" not in rendered


@pytest.mark.e2e
def test_queue_messages_are_all_accounted_for_and_a_loss_or_a_double_is_seen(
    stack: Stack,
) -> None:
    plan = queue_accounting.Plan.new(50, 3)
    counted = queue_accounting.run(
        stack.connection_string, stack.db_path, plan, read_log=stack.host.log, timeout=120
    )
    assert counted.succeeded == 50 and counted.missing == 0 and counted.unfinished == 0
    assert counted.rows_stored == counted.rows_sent == 150
    assert counted.lost == 0 and counted.doubled == 0 and counted.poison == 0
    assert counted.ok

    # The same rows, doctored as a lost message and a doubled run would leave them.
    with sqlite3.connect(stack.db_path) as conn:
        conn.execute("DELETE FROM embeddings WHERE model_id = ? AND entity_id = 'm7-r1'",
                     (plan.model_id,))  # fmt: skip
        conn.execute("UPDATE jobs SET attempts = 2 WHERE id = ?", (plan.job_id(3),))
        conn.execute("UPDATE jobs SET status = 'running' WHERE id = ?", (plan.job_id(4),))
        conn.execute("DELETE FROM jobs WHERE id = ?", (plan.job_id(5),))
    doctored = queue_accounting.account(
        stack.db_path, plan, host_log=stack.host.log(), poison=1, left_in_queue=0
    )
    assert doctored.missing == 1 and doctored.unfinished == 1
    assert doctored.lost == 2 + 1  # two jobs did not succeed, one row is gone
    assert doctored.doubled == 1
    assert not doctored.ok
    row = report.ingestion_row(doctored)
    assert row.goal == "MISSED" and "lost 3, doubled 1" in row.happened


@pytest.mark.e2e
def test_the_host_log_is_read_for_failed_invocations(stack: Stack) -> None:
    assert stack.call("POST", "/vectors/cosine", {"a": [1, 0], "b": [0, 1]}).status == 200
    clean = hostlog.read(stack.host.log())
    assert clean.ok and clean.invocations >= 1
    assert report.host_log_row(clean).goal == "met"
    failing = stack.host.log() + (
        "Executed 'Functions.run_ingestion_job' (Failed, Id=x, Duration=1ms) OSError: gone\n"
        "Traceback (most recent call last):\n"
    )
    bad = hostlog.read(failing)
    assert bad.failed == {"run_ingestion_job": 1} and bad.tracebacks == 1
    row = report.host_log_row(bad)
    assert row.goal == "MISSED" and "1 of run_ingestion_job" in row.happened


@pytest.mark.e2e
def test_memory_is_held_against_the_cache_bounds(stack: Stack) -> None:
    assert rss(stack.pid) > 10 << 20  # the host with numpy and the app loaded
    bounds = CacheBounds(search_cache=64 << 20, buffer_pool=16 << 20, sessions=4, model_bytes=1024)
    assert bounds.total == (80 << 20) + 4096
    base = 100 << 20
    within = MemoryFigures(base, base, base + (80 << 20), base + (80 << 20), bounds)
    assert within.ok and report.memory_row(within).goal == "met"
    grew = MemoryFigures(base, base, base + (81 << 20), base + (81 << 20), bounds)
    assert not grew.ok and report.memory_row(grew).goal == "MISSED"
    spiked = MemoryFigures(base, base, base, base + (200 << 20), bounds)
    assert not spiked.ok


def test_suites_bring_back_outcomes_and_what_happened(tmp_path: Path) -> None:
    faults = tmp_path / "tests" / "reliability" / "faults"
    faults.mkdir(parents=True)
    (faults / "test_storage.py").write_text(
        textwrap.dedent(
            '''
            def test_storage_down(record_property):
                """Storage down: the queue listener recovers."""
                record_property("happened", "recovered after 20 s, 0 lost")

            def test_sqlite_locked():
                """SQLite locked: a 503 with Retry-After."""
                assert 500 == 503, "answered 500"
            '''
        )
    )
    (tmp_path / "tests" / "test_unrelated.py").write_text("def test_other():\n    pass\n")
    result = run_suites(tmp_path, root=tmp_path, timeout=120)
    by_name = {o.name: o for o in result.outcomes}
    assert set(by_name) == {"test_storage_down", "test_sqlite_locked"}  # others left out
    assert by_name["test_storage_down"].outcome == "passed"
    assert by_name["test_storage_down"].happened == "recovered after 20 s, 0 lost"
    assert by_name["test_sqlite_locked"].outcome == "failed"
    assert "answered 500" in by_name["test_sqlite_locked"].message
    assert all(o.group == "fault" for o in result.outcomes) and not result.ok
    rows = report.suite_rows(result)
    assert [r.goal for r in rows] == ["MISSED", "met"]
    assert "SQLite locked: a 503 with Retry-After. — failed: " in rows[0].happened


def test_no_suites_is_a_row_that_says_so(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    result = run_suites(tmp_path, root=tmp_path, timeout=120)
    assert result.outcomes == () and result.ok
    (row,) = report.suite_rows(result)
    assert "no reliability tests found" in row.happened


def test_doc_block_is_replaced_between_its_markers(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text(f"# x\n{report.BEGIN}\nold\n{report.END}\nafter\n")
    assert report.update_doc(doc, "new table\n")
    assert doc.read_text() == f"# x\n{report.BEGIN}\nnew table\n{report.END}\nafter\n"
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n")
    assert not report.update_doc(plain, "x") and plain.read_text() == "no markers\n"


def test_the_reliability_doc_carries_the_markers() -> None:
    """`make reliability` (`--docs`) writes its table between these markers."""
    from reliability.__main__ import DOC_PATH, HERE

    text = (HERE.parent / DOC_PATH).read_text(encoding="utf-8")
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1


def test_a_run_that_breaks_still_prints_its_table_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import reliability.__main__ as runner

    def broken(tmp: Path, settings: object) -> list[report.Row]:
        raise ConnectionRefusedError("the host went away")

    monkeypatch.setattr(runner, "measure", broken)
    monkeypatch.setenv("RELIABILITY_SUITES", "0")
    out = tmp_path / "latest.md"
    assert runner.main(["--out", str(out), "--work", str(tmp_path / "work")]) == 1
    written = out.read_text()
    assert "stopped: ConnectionRefusedError: the host went away | MISSED |" in written
    assert "not run (RELIABILITY_SUITES=0)" in written
    assert written in capsys.readouterr().out
