"""Every analytics figure equals a plain SQL aggregation over the same rows.

The percentile method (nearest rank: the value at 1-based rank ceil(p * n / 100) in
ascending order) is written here in SQL with window functions, the histogram bin as
SQL arithmetic, the UTC buckets with SQLite's date functions: nothing is shared with
the numpy code except the rows. Runs on sqlite3 and on pyodbc (SQLite3 ODBC driver).
"""

from __future__ import annotations

import pytest

from shared.analytics.aggregate import PERCENTILES
from shared.analytics.service import AnalyticsService
from shared.db.connection import Database
from tests.analytics.rows import (
    NOW,
    add_inferences,
    add_jobs,
    random_inferences,
    random_jobs,
)
from tests.support.db import BOTH_DRIVERS

#: Each test runs on both SQLite paths (sqlite3 and pyodbc).
pytestmark = BOTH_DRIVERS

BUCKET_SQL = {
    "day": "strftime('%Y-%m-%dT00:00:00.000Z', created_at)",
    "week": "strftime('%Y-%m-%dT00:00:00.000Z', created_at, '-6 days', 'weekday 1')",
    "month": "strftime('%Y-%m-01T00:00:00.000Z', created_at)",
}
BIN_SQL = (
    "CASE WHEN confidence < 0 THEN 0 WHEN confidence * 10 >= 9 THEN 9 "
    "ELSE CAST(confidence * 10 AS INTEGER) END"
)


def service(db: Database, chunk_rows: int = 65_536) -> AnalyticsService:
    return AnalyticsService(db, chunk_rows=chunk_rows, clock=NOW.timestamp)


def sql_since(db: Database, days: int) -> str:
    """Midnight UTC of the first of the last `days` days before NOW, computed by SQLite."""
    return db.scalar(
        "SELECT strftime('%Y-%m-%dT%H:%M:%f', ?, 'unixepoch', 'start of day', ?) AS s",
        (int(NOW.timestamp()), f"-{days - 1} days"),
    )


def sql_groups(db: Database, group: str, where: str = "1 = 1", params=()) -> dict:
    rows = db.query(
        f"SELECT {group} AS g, COUNT(*) AS n, "
        "SUM(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS failures, "
        "SUM(rows) AS total_rows, AVG(latency_ms) AS latency_mean, "
        "COUNT(confidence) AS conf_n, AVG(confidence) AS conf_mean, "
        "MIN(created_at) AS first_at, MAX(created_at) AS last_at "
        f"FROM inference_log WHERE {where} GROUP BY {group}",
        params,
    )
    return {r["g"]: r for r in rows}


def sql_percentile(db: Database, p: int, group: str, where: str = "1 = 1", params=()) -> dict:
    rows = db.query(
        "SELECT g, latency_ms FROM ("
        f"SELECT {group} AS g, latency_ms, "
        f"ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY latency_ms) AS rn, "
        f"COUNT(*) OVER (PARTITION BY {group}) AS n FROM inference_log WHERE {where}"
        ") WHERE rn = MAX(1, (? * n + 99) / 100)",
        (*params, p),
    )
    return {r["g"]: float(r["latency_ms"]) for r in rows}


def sql_histogram(db: Database, name: str) -> list[int]:
    rows = db.query(
        f"SELECT {BIN_SQL} AS b, COUNT(*) AS n FROM inference_log "
        "WHERE model_name = ? AND confidence IS NOT NULL GROUP BY b",
        (name,),
    )
    counts = [0] * 10
    for r in rows:
        counts[int(r["b"])] = int(r["n"])
    return counts


def assert_figures(got: dict, want: dict, percentiles: dict[int, float]) -> None:
    assert got["count"] == want["n"]
    assert got["failures"] == want["failures"]
    assert got["rows"] == want["total_rows"]
    assert got["latency_ms"]["mean"] == pytest.approx(want["latency_mean"], rel=1e-12)
    for p in PERCENTILES:
        assert got["latency_ms"][f"p{p}"] == percentiles[p]  # an observed value: exact
    assert got["confidence"]["count"] == want["conf_n"]
    if want["conf_n"]:
        assert got["confidence"]["mean"] == pytest.approx(want["conf_mean"], rel=1e-12)
    else:
        assert got["confidence"]["mean"] is None
    assert got["first_at"] == want["first_at"] + "Z"
    assert got["last_at"] == want["last_at"] + "Z"


@pytest.mark.parametrize("chunk_rows", [7, 65_536])
def test_per_model_figures_match_sql(db: Database, chunk_rows: int) -> None:
    add_inferences(db, random_inferences(700))
    out = service(db, chunk_rows).models()
    want = sql_groups(db, "model_name")
    pct = {p: sql_percentile(db, p, "model_name") for p in PERCENTILES}
    assert [m["name"] for m in out["models"]] == sorted(want)
    assert sum(m["count"] for m in out["models"]) == 700 + 6
    for m in out["models"]:
        assert_figures(m, want[m["name"]], {p: pct[p][m["name"]] for p in PERCENTILES})
        assert m["registered"] is False  # nothing registered in this database


@pytest.mark.parametrize("days", [3, 45])
def test_model_figures_in_a_window_match_sql(db: Database, days: int) -> None:
    add_inferences(db, random_inferences(500))
    since = sql_since(db, days)
    where, params = "created_at >= ? AND model_name = ?", (since, "iris")
    want = sql_groups(db, "model_name", where, params)
    got = service(db).model("iris", days)
    if not want:
        assert got["count"] == 0 and got["latency_ms"]["p95"] is None
        return
    pct = {p: sql_percentile(db, p, "model_name", where, params)["iris"] for p in PERCENTILES}
    assert_figures(got, want["iris"], pct)


def test_model_detail_histogram_matches_sql(db: Database) -> None:
    add_inferences(db, random_inferences(800))
    for name in ("iris", "minilm", "ghost"):
        got = service(db, chunk_rows=64).model(name)
        hist = got["confidence"]["histogram"]
        assert hist["edges"][0] == 0.0 and hist["edges"][-1] == 1.0 and len(hist["edges"]) == 11
        assert hist["counts"] == sql_histogram(db, name)
        assert sum(hist["counts"]) == got["confidence"]["count"]
        want = sql_groups(db, "model_name", "model_name = ?", (name,))[name]
        pct = {p: sql_percentile(db, p, "model_name")[name] for p in PERCENTILES}
        assert_figures(got, want, pct)


@pytest.mark.parametrize("bucket", ["day", "week", "month"])
@pytest.mark.parametrize("days", [1, 10, 100, 365])
def test_usage_buckets_match_sql(db: Database, bucket: str, days: int) -> None:
    add_inferences(db, random_inferences(600))
    add_jobs(db, random_jobs(150))
    out = service(db, chunk_rows=50).usage(bucket, days)
    since = sql_since(db, days)
    assert out["since"] == since + "Z"
    group = BUCKET_SQL[bucket]
    where = "created_at >= ?"
    want = sql_groups(db, group, where, (since,))
    p95 = sql_percentile(db, 95, group, where, (since,))
    jobs = {
        r["g"]: r
        for r in db.query(
            f"SELECT {group} AS g, COUNT(*) AS n, "
            "SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed "
            f"FROM jobs WHERE {where} GROUP BY {group}",
            (since,),
        )
    }
    starts = [b["start"] for b in out["buckets"]]
    assert starts == sorted(set(starts))
    assert starts[0] <= out["since"] and set(want) | set(jobs) <= set(starts)
    for b in out["buckets"]:
        w, j = want.get(b["start"]), jobs.get(b["start"])
        assert b["inferences"] == (w["n"] if w else 0)
        assert b["failures"] == (w["failures"] if w else 0)
        assert b["latency_p95_ms"] == (p95[b["start"]] if w else None)
        assert b["jobs"] == (j["n"] if j else 0)
        assert b["job_failures"] == (j["failed"] if j else 0)
    totals = db.query_one(
        "SELECT COUNT(*) AS n, SUM(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS f, "
        "SUM(rows) AS r FROM inference_log WHERE created_at >= ?",
        (since,),
    )
    assert out["totals"]["inferences"] == totals["n"]
    assert out["totals"]["failures"] == (totals["f"] or 0)
    assert out["totals"]["rows"] == (totals["r"] or 0)
    by_kind = db.query(
        "SELECT kind, COUNT(*) AS n, SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS f "
        "FROM jobs WHERE created_at >= ? GROUP BY kind ORDER BY kind",
        (since,),
    )
    assert out["jobs_by_kind"] == [
        {"kind": r["kind"], "count": r["n"], "failures": r["f"]} for r in by_kind
    ]
    assert out["totals"]["jobs"] == sum(r["n"] for r in by_kind)
