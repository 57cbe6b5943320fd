"""One table for the whole run (faults, load, inputs), as markdown: printed, written to
`reliability/latest.md`, and copied into docs/reliability.md between its markers."""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import psutil

from reliability.host_memory import MemoryFigures, MiB
from reliability.hostlog import HostLog
from reliability.load import LoadFigures
from reliability.queue_accounting import Accounting
from reliability.suites import SuiteResult

BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"


@dataclass(frozen=True)
class Row:
    area: str
    tried: str
    happened: str
    goal: str  # "met", "MISSED", or "" where there is no goal


def _goal(ok: bool) -> str:
    return "met" if ok else "MISSED"


def load_rows(load: LoadFigures) -> list[Row]:
    rows = []
    for r in load.routes:
        errors = f"; {'; '.join(r.errors)[:200]}" if r.errors else ""
        rows.append(
            Row(
                "load",
                f"`{r.route}`, {load.users // 3} of {load.users} clients for {load.seconds} s "
                "(the three routes at once)",
                f"{r.requests:,} requests, {r.rps:,.1f}/s, p50 {r.p50_ms:,.0f} ms, "
                f"p99 {r.p99_ms:,.0f} ms, {r.failures} errors{errors}",
                _goal(r.failures == 0 and r.requests > 0),
            )
        )
    return rows


def ingestion_row(a: Accounting) -> Row:
    rate = a.sent / a.seconds if a.seconds else 0.0
    happened = (
        f"{a.succeeded:,} succeeded, {a.failed} failed, {a.unfinished} unfinished, "
        f"{a.missing} without a row; {a.rows_stored:,} of {a.rows_sent:,} rows stored; "
        f"{a.extra_runs} extra runs ({a.retried} after a failed invocation); "
        f"poison {a.poison}, left in queue {a.left_in_queue}; "
        f"**lost {a.lost}, doubled {a.doubled}**; {a.seconds:,.0f} s, {rate:,.0f} jobs/s"
    )
    tried = f"{a.sent:,} embeddings jobs as plain JSON on `ingestion-jobs`, distinct job ids"
    return Row("load", tried, happened, _goal(a.ok))


def memory_row(m: MemoryFigures) -> Row:
    def mb(n: int) -> str:
        return f"{n / MiB:,.0f} MiB"

    return Row(
        "load",
        "host RSS (process tree) through the whole load",
        f"start {mb(m.start)}, after warm-up {mb(m.warm)}, end {mb(m.end)}, peak {mb(m.peak)}; "
        f"growth {mb(m.growth)} (after warm-up {mb(m.end - m.warm)}) against a bound of "
        f"{mb(m.bounds.total)} ({m.bounds.describe()})",
        _goal(m.ok),
    )


def host_log_row(log: HostLog) -> Row:
    failed = ", ".join(f"{n} of {fn}" for fn, n in sorted(log.failed.items())) or "none"
    return Row(
        "load",
        "the host's log over the whole load",
        f"{log.invocations:,} invocations; failed: {failed}; {log.tracebacks} tracebacks",
        _goal(log.ok),
    )


def suite_rows(suites: SuiteResult | None) -> list[Row]:
    if suites is None:
        return [Row("tests", "fault and hostile-input tests", "not run (RELIABILITY_SUITES=0)", "")]
    if not suites.outcomes:
        note = f"no reliability tests found (pytest exit {suites.returncode})"
        return [Row("tests", "`tests/reliability/`, tests marked `reliability`", note, "")]
    order = {"fault": 0, "input": 1, "other": 2}
    rows = []
    for o in sorted(suites.outcomes, key=lambda o: (order[o.group], o.nodeid)):
        what = o.happened or o.name
        if o.outcome != "passed" and o.message:
            what = f"{what} — {o.outcome}: {o.message}"
        goal = {"passed": "met", "failed": "MISSED"}.get(o.outcome, o.outcome)
        rows.append(Row(o.group, f"`{o.name}`", what[:400], goal))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: list[Row]) -> str:
    lines = ["| area | tried | what happened | goal |", "| --- | --- | --- | --- |"]
    lines += [f"| {r.area} | {_cell(r.tried)} | {_cell(r.happened)} | {r.goal} |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    """nproc, memory, date: what the figures depend on."""
    memory = psutil.virtual_memory().total / (1 << 30)
    load = os.getloadavg()[0]
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{date} on {os.cpu_count()} cores (nproc), {memory:.1f} GiB memory, "
        f"Python {platform.python_version()}, load average {load:.1f} at the end"
    )


def document(rows: list[Row], *, settings_line: str) -> str:
    return f"Run: {machine()}. {settings_line}\n\n{table(rows)}\n"


def update_doc(doc: Path, text: str) -> bool:
    """Replace what lies between the document's markers; False if it has none."""
    content = doc.read_text(encoding="utf-8")
    if BEGIN not in content or END not in content:
        return False
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{text}{END}{tail}", encoding="utf-8")
    return True
