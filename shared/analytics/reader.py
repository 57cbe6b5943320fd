"""Read inference and job events from SQL in chunks straight into structured arrays.

The SQL does the per-row conversions the records need (timestamps to epoch ms,
categorical strings to codes), so each chunk of driver rows becomes records with one
`np.fromiter` call and the rows are dropped: no Python object per event outlives its
chunk, and memory holds the compact records plus one chunk. Inference rows are read one
model at a time through the (model_name, created_at) index, so the model code is a
constant of the query.
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

DEFAULT_CHUNK_ROWS = 65_536


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


def _fill(
    db: Database, sql: str, params: Sequence[Any], dtype: np.dtype, chunk_rows: int
) -> list[np.ndarray]:
    """Run one SELECT and turn its rows into record arrays, a chunk at a time."""
    parts: list[np.ndarray] = []
    with db.transaction(readonly=True) as conn:
        cursor = conn.execute(sql, tuple(params))
        while True:
            rows = cursor.fetchmany(chunk_rows)
            if not rows:
                break
            parts.append(to_records(rows, dtype))
            del rows
    return parts


def _join(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    if not parts:
        return frozen(np.empty(0, dtype=dtype))
    if len(parts) == 1:
        return frozen(parts[0])
    return frozen(np.concatenate(parts))


def _since_clause(since: str | None) -> tuple[str, list[Any]]:
    return ("", []) if since is None else (" AND created_at >= ?", [since])


def model_names(db: Database) -> list[str]:
    """Every model name in the inference log, sorted (an index-only scan)."""
    rows = db.query("SELECT DISTINCT model_name FROM inference_log ORDER BY model_name")
    return [r["model_name"] for r in rows]


def read_inference(
    db: Database,
    *,
    since: str | None = None,
    names: Sequence[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> InferenceEvents:
    """Inference events of `names` (default: every model in the log) created at or
    after `since` (stored timestamp text, e.g. ``2026-01-01T00:00:00.000``)."""
    outcome, outcome_params = _codes("outcome", OUTCOMES)
    window, window_params = _since_clause(since)
    sql = (
        f"SELECT {db.dialect.epoch_ms('created_at')}, latency_ms, confidence, rows, ?, "  # noqa: S608
        f"{outcome} FROM inference_log WHERE model_name = ?{window}"
    )
    parts: list[np.ndarray] = []
    with db.transaction(readonly=True):  # one snapshot for every model
        models = tuple(model_names(db) if names is None else names)
        for code, name in enumerate(models):
            params = [code, *outcome_params, name, *window_params]
            parts.extend(_fill(db, sql, params, INFERENCE_DTYPE, chunk_rows))
    return InferenceEvents(_join(parts, INFERENCE_DTYPE), models)


def read_jobs(
    db: Database, *, since: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> JobEvents:
    """Job events created at or after `since`; kinds are coded by a lookup read first
    (the last kind, "other", catches a kind that appears meanwhile)."""
    window, window_params = _since_clause(since)
    with db.transaction(readonly=True):
        found = db.query(
            f"SELECT DISTINCT kind FROM jobs WHERE 1 = 1{window} ORDER BY kind",  # noqa: S608
            window_params,
        )
        kinds = (*(r["kind"] for r in found), "other")
        return _read_jobs(db, kinds, window, window_params, chunk_rows)


def _read_jobs(
    db: Database, kinds: tuple[str, ...], window: str, window_params: list[Any], chunk_rows: int
) -> JobEvents:
    kind, kind_params = _codes("kind", kinds)
    status, status_params = _codes("status", JOB_STATUSES)
    epoch = db.dialect.epoch_ms
    duration = (
        "CASE WHEN started_at IS NOT NULL AND finished_at IS NOT NULL "
        f"THEN {epoch('finished_at')} - {epoch('started_at')} ELSE NULL END"
    )
    sql = (
        f"SELECT {epoch('created_at')}, {duration}, attempts, {kind}, {status} "  # noqa: S608
        f"FROM jobs WHERE 1 = 1{window}"
    )
    params = [*kind_params, *status_params, *window_params]
    return JobEvents(_join(_fill(db, sql, params, JOB_DTYPE, chunk_rows), JOB_DTYPE), kinds)
