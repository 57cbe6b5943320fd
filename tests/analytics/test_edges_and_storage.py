"""Bucket and window edges, empty data, chunk boundaries, registered and unknown models,
storage figures (against plain SQL), and the SQL Server statements' text."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from shared.analytics.aggregate import Groups, nearest_rank
from shared.analytics.reader import read_inference, read_jobs
from shared.analytics.service import AnalyticsService, UnknownModelError
from shared.db.connection import Database
from shared.db.dialects import MSSQL
from shared.embeddings.repository import EmbeddingRepository
from shared.registry.repository import ModelRepository
from tests.analytics.rows import (
    EDGES,
    NOW,
    add_inferences,
    add_jobs,
    random_inferences,
    random_jobs,
)
from tests.support.db import BOTH_DRIVERS


def service(db: Database, chunk_rows: int = 65_536) -> AnalyticsService:
    return AnalyticsService(db, chunk_rows=chunk_rows, clock=NOW.timestamp)


def edge_rows() -> list[tuple]:
    return [("iris", 1.0, 1, 0.5, "succeeded", when) for pair in EDGES for when in pair]


def same_records(a: np.ndarray, b: np.ndarray) -> bool:
    """Field by field, NaN equal to NaN (a missing confidence or duration)."""
    return a.dtype == b.dtype and all(
        np.array_equal(a[f], b[f], equal_nan=a.dtype[f].kind == "f") for f in a.dtype.names
    )


def nonempty(usage: dict) -> dict[str, int]:
    return {b["start"][:10]: b["inferences"] for b in usage["buckets"] if b["inferences"]}


@BOTH_DRIVERS
def test_events_one_ms_apart_fall_in_the_utc_day_week_and_month_they_belong_to(
    db: Database,
) -> None:
    add_inferences(db, edge_rows())
    svc = service(db)
    assert nonempty(svc.usage("day", 365)) == {
        "2025-12-31": 1,
        "2026-01-01": 1,
        "2026-02-28": 1,
        "2026-03-01": 1,
        "2026-05-31": 1,
        "2026-06-01": 1,
    }
    # ISO weeks start on Monday: Sun 31 May | Mon 1 June split; Sat 28 Feb and Sun 1 March
    # share the week of Mon 23 Feb; Wed 31 Dec and Thu 1 Jan share the week of 29 Dec.
    assert nonempty(svc.usage("week", 365)) == {
        "2025-12-29": 2,
        "2026-02-23": 2,
        "2026-05-25": 1,
        "2026-06-01": 1,
    }
    assert nonempty(svc.usage("month", 365)) == {
        "2025-12-01": 1,
        "2026-01-01": 1,
        "2026-02-01": 1,
        "2026-03-01": 1,
        "2026-05-01": 1,
        "2026-06-01": 1,
    }


@BOTH_DRIVERS
def test_the_window_starts_at_utc_midnight_of_its_first_day(db: Database) -> None:
    add_inferences(db, edge_rows())
    # NOW is 10 June 12:00 UTC: the last 10 days start at 1 June 00:00:00.000, so the
    # event 1 ms before is out and the one at midnight is in.
    out = service(db).usage("day", 10)
    assert out["since"] == "2026-06-01T00:00:00.000Z"
    assert out["totals"]["inferences"] == 1
    assert [b["start"][:10] for b in out["buckets"]] == [f"2026-06-{d:02d}" for d in range(1, 11)]
    assert service(db).usage("day", 11)["totals"]["inferences"] == 2


@BOTH_DRIVERS
def test_empty_database_gives_zeros_and_404(db: Database) -> None:
    svc = service(db)
    for bucket, count in (("day", 30), ("week", 5), ("month", 2)):  # from 12 May
        out = svc.usage(bucket, 30)
        assert len(out["buckets"]) == count
        assert all(b["inferences"] == 0 and b["latency_p95_ms"] is None for b in out["buckets"])
        assert out["totals"] == {
            "inferences": 0,
            "failures": 0,
            "rows": 0,
            "jobs": 0,
            "job_failures": 0,
        }
        assert out["jobs_by_kind"] == []
    assert svc.models() == {"days": None, "models": []}
    with pytest.raises(UnknownModelError) as err:
        svc.model("nope")
    assert err.value.field == "name"
    storage = svc.storage()
    assert storage["models"] == storage["versions"] == storage["blob_bytes"] == 0
    assert storage["embeddings"] == [] and storage["embeddings_total"]["count"] == 0
    assert len(read_inference(db)) == 0 and len(read_jobs(db)) == 0


@BOTH_DRIVERS
def test_chunked_reads_equal_one_read_and_records_are_read_only(db: Database) -> None:
    rows = [r for r in random_inferences(300) if r[0] != "iris"]
    rows += [
        ("iris", float(i % 13), 1, i / 30, "succeeded", f"2026-06-0{1 + i % 9}T10:00:00.000")
        for i in range(30)
    ]
    add_inferences(db, rows)
    add_jobs(db, random_jobs(40))
    whole = read_inference(db, chunk_rows=100_000)
    for chunk in (1, 7, 15, 30, 31):  # iris has exactly 2 chunks of 15 and 30 = one chunk
        parts = read_inference(db, chunk_rows=chunk)
        assert parts.models == whole.models
        assert len(parts) == len(rows) > chunk
        assert same_records(parts.events, whole.events)
        assert same_records(read_jobs(db, chunk_rows=chunk).events, read_jobs(db).events)
    assert not whole.events.flags.writeable
    with pytest.raises(ValueError):
        whole.events["latency_ms"][0] = 0.0
    assert whole.events.dtype.itemsize == 31  # packed records, no per-event object


@BOTH_DRIVERS
def test_registered_models_without_calls_and_calls_to_unknown_names(db: Database) -> None:
    models = ModelRepository(db)
    models.register("quiet", sha256="a" * 64, size_bytes=10, blob_uri="u", blob_name="quiet/a.onnx")
    models.register("iris", sha256="b" * 64, size_bytes=20, blob_uri="u", blob_name="iris/b.onnx")
    add_inferences(
        db,
        [
            ("iris", 2.0, 1, 0.9, "succeeded", "2026-06-01T00:00:00.000"),
            ("typo", 0.5, 1, None, "failed", "2026-06-02T00:00:00.000"),
        ],
    )
    svc = service(db)
    listed = {m["name"]: m for m in svc.models()["models"]}
    assert set(listed) == {"iris", "quiet", "typo"}
    assert listed["quiet"]["registered"] and listed["quiet"]["count"] == 0
    assert listed["quiet"]["latency_ms"] == {"mean": None, "p50": None, "p95": None, "p99": None}
    assert not listed["typo"]["registered"] and listed["typo"]["failures"] == 1
    assert listed["iris"]["latency_ms"]["p99"] == 2.0
    assert svc.model("quiet")["confidence"]["histogram"]["counts"] == [0] * 10
    assert svc.model("typo")["count"] == 1
    assert svc.model("iris", days=1)["count"] == 0  # known, nothing in the window
    with pytest.raises(UnknownModelError):
        svc.model("never")


@BOTH_DRIVERS
def test_storage_figures_match_sql(db: Database) -> None:
    models = ModelRepository(db)
    models.register("a", sha256="1" * 64, size_bytes=1000, blob_uri="u", blob_name="a/1.onnx")
    models.register("a", sha256="2" * 64, size_bytes=3000, blob_uri="u", blob_name="a/2.onnx")
    models.register("b", sha256="3" * 64, size_bytes=500, blob_uri="u", blob_name="b/3.onnx")
    models.record_refused("big", size_bytes=10**10, uploaded_as="big.onnx", reason="too big")
    vectors = EmbeddingRepository(db)
    rnd = np.random.default_rng(3)
    vectors.upsert_many(
        "m1", "text", [(f"e{i}", rnd.random(8, np.float32).tobytes()) for i in range(5)]
    )
    vectors.upsert_many(
        "m1", "image", [(f"e{i}", rnd.random(4, np.float32).tobytes()) for i in range(3)]
    )
    out = service(db).storage()
    assert out["models"] == db.scalar("SELECT COUNT(DISTINCT name) AS n FROM models") == 3
    assert out["versions"] == db.scalar("SELECT COUNT(*) AS n FROM models") == 4
    assert (
        out["blob_bytes"]
        == db.scalar("SELECT SUM(size_bytes) AS n FROM models WHERE blob_name IS NOT NULL")
        == 4500
    )
    assert {m["name"]: m["blob_bytes"] for m in out["by_model"]} == {"a": 4000, "b": 500, "big": 0}
    sets = {(e["model_id"], e["embedding_type"]): e for e in out["embeddings"]}
    for row in db.query(
        "SELECT model_id, embedding_type, COUNT(*) AS n, SUM(LENGTH(vector)) AS b "
        "FROM embeddings GROUP BY model_id, embedding_type"
    ):
        got = sets[(row["model_id"], row["embedding_type"])]
        assert (got["count"], got["vector_bytes"]) == (row["n"], row["b"])
    assert out["embeddings_total"] == {"count": 8, "vector_bytes": 5 * 32 + 3 * 16}
    pages = db.scalar("SELECT page_count AS n FROM pragma_page_count()")
    size = db.scalar("SELECT page_size AS n FROM pragma_page_size()")
    assert out["database_bytes"] == pages * size > 0
    assert out["dialect"] == "sqlite"


def test_sql_server_statements_are_generated_for_its_dialect() -> None:
    epoch = MSSQL.epoch_ms("created_at")
    assert epoch == "DATEDIFF_BIG(millisecond, CAST('1970-01-01' AS DATETIME2(3)), created_at)"
    size = MSSQL.database_bytes()
    assert "sys.allocation_units" in size and "* 8192" in size and "pragma" not in size


def test_nearest_rank_percentiles_follow_their_definition() -> None:
    rnd = random.Random(5)
    for n in range(1, 120):
        for p in (1, 50, 95, 99, 100):
            assert nearest_rank(n, p) == max(1, math.ceil(p * n / 100))
    values = np.array([rnd.choice([1.0, 2.5, 2.5, 7.0, rnd.random()]) for _ in range(500)])
    codes = np.array([rnd.randrange(4) for _ in range(500)])
    got = Groups.of(codes, 5).percentiles(values, (50, 95, 99))
    for g in range(4):
        ordered = sorted(values[codes == g])
        assert list(got[g]) == [ordered[nearest_rank(len(ordered), p) - 1] for p in (50, 95, 99)]
    assert np.isnan(got[4]).all()  # an empty group


def test_records_grow_when_more_rows_arrive_than_were_counted() -> None:
    """SQL Server without snapshot reads may return rows the COUNT did not see."""
    from shared.analytics.reader import _Records, to_records
    from shared.analytics.records import INFERENCE_DTYPE

    rows = [(i, float(i), None if i % 2 else 0.5, 1, 0, 0) for i in range(10)]
    for capacity in (0, 3, 10, 20):
        out = _Records(INFERENCE_DTYPE, capacity)
        for start in range(0, 10, 4):
            out.extend(to_records(rows[start : start + 4], INFERENCE_DTYPE))
        got = out.result()
        assert same_records(got, to_records(rows, INFERENCE_DTYPE))
        assert not got.flags.writeable and len(got) == 10


@BOTH_DRIVERS
def test_one_scan_and_per_model_index_reads_give_the_same_records(db: Database) -> None:
    from shared.analytics.reader import _counts, _one_scan_is_cheaper

    add_inferences(db, random_inferences(400))
    counts = _counts(db, "inference_log", "model_name", None)
    assert _one_scan_is_cheaper(db, counts, None)  # all time, four models: one scan
    scan = read_inference(db, chunk_rows=9)
    by_model = read_inference(db, names=list(counts), chunk_rows=9)  # index per model
    assert scan.models == by_model.models == tuple(sorted(counts))
    order = ("model", "ts_ms", "latency_ms", "rows", "outcome")
    assert same_records(np.sort(scan.events, order=order), np.sort(by_model.events, order=order))
    # A one-day window of a table spread over 200 days reads through the index.
    assert not _one_scan_is_cheaper(
        db,
        _counts(db, "inference_log", "model_name", "2026-06-10T00:00:00.000"),
        "2026-06-10T00:00:00.000",
    )
