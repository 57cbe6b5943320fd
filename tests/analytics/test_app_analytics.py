"""Analytics through the local host: real inferences on a real ONNX classifier, then the
analytics routes answer what the callers saw and what plain SQL says over the host's
own database file."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from tests.support.host import Host, upload_blob, wait_for_model
from tests.support.models import iris, write_classifier

NAME = "iris-analytics"
BATCHES = (1, 3, 5, 2, 8, 1)


def nearest_rank_sql(conn: sqlite3.Connection, p: int) -> float:
    """The p-th latency percentile by nearest rank, as SQL window functions say."""
    return conn.execute(
        "SELECT latency_ms FROM (SELECT latency_ms, "
        "ROW_NUMBER() OVER (ORDER BY latency_ms) AS rn, COUNT(*) OVER () AS n "
        "FROM inference_log WHERE model_name = ?) WHERE rn = MAX(1, (? * n + 99) / 100)",
        (NAME, p),
    ).fetchone()[0]


@pytest.fixture(scope="module")
def called(app_host: Host, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Upload the model and call it: good batches, two bad inputs, one unknown name."""
    path = write_classifier(tmp_path_factory.mktemp("analytics"), f"{NAME}.onnx")
    upload_blob(app_host, f"{NAME}.onnx", path.read_bytes())
    assert wait_for_model(app_host, NAME)["status"] == "ready"
    inp = app_host.call("GET", f"/v2/models/{NAME}").json()["inputs"][0]["name"]
    x = iris()[0]
    call_means, rows = [], 0
    for i, n in enumerate(BATCHES):
        batch = x[i * 8 : i * 8 + n]
        body = {
            "inputs": [{"name": inp, "shape": [n, 4], "datatype": "FP32", "data": batch.tolist()}]
        }
        reply = app_host.call("POST", f"/v2/models/{NAME}/infer", body)
        assert reply.status == 200, reply.body
        confidence = reply.json()["parameters"]["confidence"]
        call_means.append(sum(confidence) / len(confidence))
        rows += n
    for _ in range(2):
        bad = {"inputs": [{"name": inp, "shape": [2, 3], "datatype": "FP32", "data": [1] * 6}]}
        assert app_host.call("POST", f"/v2/models/{NAME}/infer", bad).status == 400
        # refused: no rows inferred, none counted
    one = {"inputs": [{"name": inp, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    assert app_host.call("POST", "/v2/models/no-such-analytics/infer", one).status == 404
    return {"means": call_means, "rows": rows, "size": path.stat().st_size}


@pytest.fixture
def sql(app_host: Host):
    conn = sqlite3.connect(f"file:{app_host.log_path.parent / 'app.db'}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def test_model_figures_are_what_callers_saw_and_what_sql_says(
    app_host: Host, called: dict, sql: sqlite3.Connection
) -> None:
    reply = app_host.call("GET", f"/analytics/models/{NAME}")
    assert reply.status == 200, reply.body
    got = reply.json()
    assert got["registered"] is True
    assert got["count"] == len(BATCHES) + 2 and got["failures"] == 2
    assert got["rows"] == called["rows"]
    conf = got["confidence"]
    assert conf["count"] == len(BATCHES)
    assert conf["mean"] == pytest.approx(float(np.mean(called["means"])), rel=1e-9)
    bins = np.clip(np.floor(np.array(called["means"]) * 10), 0, 9).astype(int)
    assert conf["histogram"]["counts"] == np.bincount(bins, minlength=10).tolist()
    for p in (50, 95, 99):
        assert got["latency_ms"][f"p{p}"] == nearest_rank_sql(sql, p)
    mean = sql.execute(
        "SELECT AVG(latency_ms) FROM inference_log WHERE model_name = ?", (NAME,)
    ).fetchone()[0]
    assert got["latency_ms"]["mean"] == pytest.approx(mean, rel=1e-12)
    first, last = sql.execute(
        "SELECT MIN(created_at), MAX(created_at) FROM inference_log WHERE model_name = ?", (NAME,)
    ).fetchone()
    assert (got["first_at"], got["last_at"]) == (first + "Z", last + "Z")


def test_models_list_marks_calls_to_unknown_names(app_host: Host, called: dict) -> None:
    listed = {m["name"]: m for m in app_host.call("GET", "/analytics/models").json()["models"]}
    assert listed[NAME]["count"] == len(BATCHES) + 2
    assert "histogram" not in listed[NAME]["confidence"] or (
        listed[NAME]["confidence"]["histogram"] is None
    )
    ghost = listed["no-such-analytics"]
    assert ghost["registered"] is False and ghost["count"] == ghost["failures"] == 1
    missing = app_host.call("GET", "/analytics/models/never-called")
    assert missing.status == 404 and missing.json()["error"]["field"] == "name"


def test_usage_buckets_sum_to_the_rows_in_sql(
    app_host: Host, called: dict, sql: sqlite3.Connection
) -> None:
    out = app_host.call("GET", "/analytics/usage?bucket=day&days=2").json()
    assert len(out["buckets"]) == 2
    total, failed = sql.execute(
        "SELECT COUNT(*), SUM(outcome = 'failed') FROM inference_log"
    ).fetchone()
    assert out["totals"]["inferences"] == total == len(BATCHES) + 3
    assert out["totals"]["failures"] == failed == 3
    assert sum(b["inferences"] for b in out["buckets"]) == total
    jobs = sql.execute("SELECT kind, COUNT(*) FROM jobs GROUP BY kind").fetchall()
    assert out["totals"]["jobs"] == sum(n for _, n in jobs) >= 1
    assert {k["kind"]: k["count"] for k in out["jobs_by_kind"]} == dict(jobs)
    for bucket in ("week", "month"):
        other = app_host.call("GET", f"/analytics/usage?bucket={bucket}&days=2").json()
        assert sum(b["inferences"] for b in other["buckets"]) == total


@pytest.mark.parametrize(
    ("query", "field"),
    [("days=366", "days"), ("days=0", "days"), ("bucket=year", "bucket"), ("days=x", "days")],
)
def test_usage_refuses_bad_queries_naming_the_field(app_host: Host, query: str, field: str) -> None:
    reply = app_host.call("GET", f"/analytics/usage?{query}")
    assert reply.status == 400
    assert reply.json()["error"]["field"] == field


def test_storage_counts_the_registered_bytes(
    app_host: Host, called: dict, sql: sqlite3.Connection
) -> None:
    out = app_host.call("GET", "/analytics/storage").json()
    by_model = {m["name"]: m for m in out["by_model"]}
    assert by_model[NAME] == {"name": NAME, "versions": 1, "blob_bytes": called["size"]}
    assert out["versions"] == sql.execute("SELECT COUNT(*) FROM models").fetchone()[0]
    blob_bytes = sql.execute(
        "SELECT COALESCE(SUM(size_bytes), 0) FROM models WHERE blob_name IS NOT NULL"
    ).fetchone()[0]
    assert out["blob_bytes"] == blob_bytes
    assert out["database_bytes"] > 0 and out["dialect"] == "sqlite"


def test_analytics_routes_need_a_function_key(app_host: Host) -> None:
    for path in ("/analytics/usage", "/analytics/models", "/analytics/storage"):
        assert app_host.call("GET", path, key=None).status == 401
