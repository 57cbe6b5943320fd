"""Read inference and job events from SQL in chunks straight into structured arrays.

The SQL does the per-row conversions the records need (timestamps to epoch ms,
categorical strings to codes), so each chunk of driver rows becomes records with one
`np.fromiter` call and the rows are dropped: no Python object per event outlives its
chunk, and memory holds the compact records plus one chunk. Counts read first (in the
same snapshot) size the arrays and give the lookup tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.analytics.records import (
    INFERENCE_DTYPE,
    JOB_DTYPE,
    JOB_STATUSES,
    OUTCOMES,
    InferenceEvents,
    JobEvents,
    frozen,
)
from shared.db.connection import Database
from shared.inference.repository import flush_inference_log

DEFAULT_CHUNK_ROWS = 16_384  # driver rows alive at once: a few MB


def _codes(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    """`CASE column WHEN ? THEN 0 ... ELSE <last> END`: the code of a value from a fixed
    vocabulary whose last entry is the catch-all."""
    if len(values) == 1:
        return "0", []
    whens = " ".join(f"WHEN ? THEN {i}" for i in range(len(values) - 1))
    return f"CASE {column} {whens} ELSE {len(values) - 1} END", list(values[:-1])


def to_records(rows: Sequence[Sequence[Any]], dtype: np.dtype) -> np.ndarray:
    """Driver rows (in `dtype`'s field order) as records, in one C loop; None in a float
    field becomes NaN."""
    if rows and not isinstance(rows[0], tuple):  # pyodbc.Row
        rows = [tuple(r) for r in rows]
    return np.fromiter(rows, dtype=dtype, count=len(rows))


class _Records:
    """A record array filled in place: sized from a COUNT read first (in the same
    snapshot), so no chunk list is concatenated into a second copy at the end. It
    doubles if more rows arrive than counted (a database without snapshot reads)."""

    def __init__(self, dtype: np.dtype, capacity: int) -> None:
        self.data = np.empty(capacity, dtype=dtype)
        self.size = 0

    def extend(self, chunk: np.ndarray) -> None:
        end = self.size + len(chunk)
        if end > len(self.data):
            grown = np.empty(max(end, 2 * len(self.data)), dtype=self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = chunk
        self.size = end

    def result(self) -> np.ndarray:
        data = self.data if self.size == len(self.data) else self.data[: self.size].copy()
        return frozen(data)


def _fill(db: Database, sql: str, params: Sequence[Any], out: _Records, chunk_rows: int) -> None:
    """Run one SELECT and append its rows to `out` as records, a chunk at a time."""
    with db.transaction(readonly=True) as conn:
        cursor = conn.execute(sql, tuple(params))
        while rows := cursor.fetchmany(chunk_rows):
            out.extend(to_records(rows, out.data.dtype))
            del rows


def _since_clause(since: str | None) -> tuple[str, list[Any]]:
    return ("", []) if since is None else (" AND created_at >= ?", [since])


def _counts(db: Database, table: str, column: str, since: str | None) -> dict[str, int]:
    """Rows per value of `column` (from the created_at window), sorted by value."""
    window, params = _since_clause(since)
    rows = db.query(
        f"SELECT {column} AS v, COUNT(*) AS n FROM {table} WHERE 1 = 1{window} "  # noqa: S608
        f"GROUP BY {column} ORDER BY {column}",
        params,
    )
    return {r["v"]: int(r["n"]) for r in rows}


# Relative costs per row on SQLite, measured: a table scan 1, a row fetched through the
# (model_name, created_at) index ~4.5, one CASE comparison ~0.04.
_INDEX_ROW, _CASE_COMPARE, _MAX_CASE = 4.5, 0.04, 500


def _one_scan_is_cheaper(db: Database, counts: dict[str, int], since: str | None) -> bool:
    """One table scan coding names with a CASE (most frequent first) against one index
    range read per model: the scan wins for all-time reads over few models, the index
    for narrow windows."""
    wanted = sum(counts.values())
    if not wanted or len(counts) > _MAX_CASE:
        return False
    table = wanted if since is None else int(db.scalar("SELECT COUNT(*) AS n FROM inference_log"))
    by_use = sorted(counts.values(), reverse=True)
    compares = sum((i + 1) * n for i, n in enumerate(by_use))
    return table + _CASE_COMPARE * compares < _INDEX_ROW * wanted


def read_inference(
    db: Database,
    *,
    since: str | None = None,
    names: Sequence[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> InferenceEvents:
    """Inference events of `names` (default: every model in the log) created at or
    after `since` (stored timestamp text, e.g. ``2026-01-01T00:00:00.000``)."""
    flush_inference_log()  # this process's calls so far, whose rows a thread writes
    outcome, outcome_params = _codes("outcome", OUTCOMES)
    window, window_params = _since_clause(since)
    head = f"SELECT {db.dialect.epoch_ms('created_at')}, latency_ms, confidence, rows"
    with db.transaction(readonly=True):  # one snapshot: counts, then the rows
        if names is None:
            counts = _counts(db, "inference_log", "model_name", since)  # index-only
        else:
            count = f"SELECT COUNT(*) AS n FROM inference_log WHERE model_name = ?{window}"  # noqa: S608
            counts = {n: int(db.scalar(count, [n, *window_params])) for n in names}
        models = tuple(counts)
        out = _Records(INFERENCE_DTYPE, sum(counts.values()))
        if names is None and _one_scan_is_cheaper(db, counts, since):
            by_use = sorted(range(len(models)), key=lambda c: -counts[models[c]])
            whens = " ".join(f"WHEN ? THEN {c}" for c in by_use)
            sql = (
                f"{head}, CASE model_name {whens} ELSE -1 END, {outcome} "
                f"FROM inference_log WHERE 1 = 1{window}"
            )
            params = [*(models[c] for c in by_use), *outcome_params, *window_params]
            _fill(db, sql, params, out, chunk_rows)
        else:
            sql = f"{head}, ?, {outcome} FROM inference_log WHERE model_name = ?{window}"
            for code, name in enumerate(models):
                _fill(db, sql, [code, *outcome_params, name, *window_params], out, chunk_rows)
    events = out.result()
    if len(events) and events["model"].min() < 0:  # a name first seen after the count
        events = frozen(events[events["model"] >= 0])
    return InferenceEvents(events, models)


def read_jobs(
    db: Database, *, since: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> JobEvents:
    """Job events created at or after `since`. Kinds are coded by a lookup read first;
    its last entry, "other", catches a kind that appears meanwhile."""
    window, window_params = _since_clause(since)
    epoch = db.dialect.epoch_ms
    duration = (
        "CASE WHEN started_at IS NOT NULL AND finished_at IS NOT NULL "
        f"THEN {epoch('finished_at')} - {epoch('started_at')} ELSE NULL END"
    )
    status, status_params = _codes("status", JOB_STATUSES)
    with db.transaction(readonly=True):
        counts = _counts(db, "jobs", "kind", since)
        kinds = (*counts, "other")
        kind, kind_params = _codes("kind", kinds)
        sql = (
            f"SELECT {epoch('created_at')}, {duration}, attempts, {kind}, {status} "  # noqa: S608
            f"FROM jobs WHERE 1 = 1{window}"
        )
        out = _Records(JOB_DTYPE, sum(counts.values()))
        _fill(db, sql, [*kind_params, *status_params, *window_params], out, chunk_rows)
    return JobEvents(out.result(), kinds)
