"""Analytics the HTTP routes serve: usage over time, per-model figures, storage.

Reads events as compact records (shared.analytics.reader), aggregates them with numpy
(shared.analytics.aggregate) and returns plain JSON-ready dicts shaped as
shared.analytics.shapes declares. Nothing here knows about azure.functions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import numpy as np

from shared.analytics.aggregate import (
    DAY_MS,
    HISTOGRAM_BINS,
    PERCENTILES,
    Bucket,
    InferenceStats,
    bucket_range,
    bucket_start,
    inference_stats,
)
from shared.analytics.footprint import storage_summary
from shared.analytics.reader import DEFAULT_CHUNK_ROWS, read_inference, read_jobs
from shared.analytics.records import JOB_FAILED
from shared.db.connection import Database
from shared.errors import NotFoundError

_EPOCH = datetime(1970, 1, 1)


class UnknownModelError(NotFoundError):
    """No model of this name is registered or has ever been called."""

    code = "model_not_found"


def _stored(ms: int) -> str:
    """Epoch ms as the stored timestamp text (naive UTC, milliseconds)."""
    return (_EPOCH + timedelta(milliseconds=int(ms))).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def iso(ms: int) -> str | None:
    """Epoch ms as ISO-8601 UTC with a Z; None for the "no time" marker (-1)."""
    return None if ms < 0 else _stored(ms) + "Z"


def _num(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def window_start(now_ms: int, days: int) -> int:
    """The last `days` UTC days including today: midnight of the first of them."""
    return int(now_ms - now_ms % DAY_MS - (days - 1) * DAY_MS)


def _figures(stats: InferenceStats, g: int) -> dict[str, Any]:
    latency = {"mean": _num(stats.latency_mean[g])}
    latency.update({f"p{p}": _num(v) for p, v in zip(PERCENTILES, stats.latency[g], strict=True)})
    out: dict[str, Any] = {
        "count": int(stats.count[g]),
        "failures": int(stats.failures[g]),
        "rows": int(stats.rows[g]),
        "latency_ms": latency,
        "confidence": {
            "count": int(stats.confidence_count[g]),
            "mean": _num(stats.confidence_mean[g]),
        },
        "first_at": iso(int(stats.first_ms[g])),
        "last_at": iso(int(stats.last_ms[g])),
    }
    if stats.histogram is not None:
        out["confidence"]["histogram"] = {
            "edges": [i / HISTOGRAM_BINS for i in range(HISTOGRAM_BINS + 1)],
            "counts": [int(c) for c in stats.histogram[g]],
        }
    return out


class AnalyticsService:
    """Usage, per-model and storage analytics over the app's database."""

    def __init__(
        self,
        db: Database,
        *,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock` gives "now" in epoch seconds (tests pass a fixed one)."""
        self.db = db
        self.chunk_rows = chunk_rows
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _since(self, days: int | None) -> str | None:
        return None if days is None else _stored(window_start(self._now_ms(), days))

    def usage(self, bucket: Bucket, days: int) -> dict[str, Any]:
        """Inferences and jobs per UTC day, ISO week or month over the last `days` days;
        every bucket in the window is listed, empty ones with zeros."""
        now = self._now_ms()
        since = window_start(now, days)
        inf = read_inference(self.db, since=_stored(since), chunk_rows=self.chunk_rows)
        jobs = read_jobs(self.db, since=_stored(since), chunk_rows=self.chunk_rows)
        last = max(
            now, int(inf.events["ts_ms"].max(initial=0)), int(jobs.events["ts_ms"].max(initial=0))
        )
        starts = bucket_range(since, last, bucket)
        codes = np.searchsorted(starts, bucket_start(inf.events["ts_ms"], bucket))
        stats = inference_stats(inf.events, codes, len(starts))
        job_codes = np.searchsorted(starts, bucket_start(jobs.events["ts_ms"], bucket))
        failed = jobs.events["status"] == JOB_FAILED
        job_count = np.bincount(job_codes, minlength=len(starts))
        job_failed = np.bincount(job_codes[failed], minlength=len(starts))
        kinds = jobs.events["kind"].astype(np.intp)
        kind_count = np.bincount(kinds, minlength=len(jobs.kinds))
        kind_failed = np.bincount(kinds[failed], minlength=len(jobs.kinds))
        return {
            "bucket": bucket,
            "days": days,
            "since": iso(since),
            "until": iso(now),
            "totals": {
                "inferences": int(stats.count.sum()),
                "failures": int(stats.failures.sum()),
                "rows": int(stats.rows.sum()),
                "jobs": len(jobs),
                "job_failures": int(failed.sum()),
            },
            "buckets": [
                {
                    "start": iso(int(start)),
                    "inferences": int(stats.count[i]),
                    "failures": int(stats.failures[i]),
                    "latency_p95_ms": _num(stats.latency[i][PERCENTILES.index(95)]),
                    "jobs": int(job_count[i]),
                    "job_failures": int(job_failed[i]),
                }
                for i, start in enumerate(starts)
            ],
            "jobs_by_kind": [
                {"kind": kind, "count": int(kind_count[k]), "failures": int(kind_failed[k])}
                for k, kind in enumerate(jobs.kinds)
                if kind_count[k]
            ],
        }

    def _registered(self, name: str | None = None) -> set[str]:
        if name is None:
            rows = self.db.query("SELECT DISTINCT name FROM models")
        else:
            rows = self.db.query("SELECT DISTINCT name FROM models WHERE name = ?", (name,))
        return {r["name"] for r in rows}

    def models(self, days: int | None = None) -> dict[str, Any]:
        """Figures per model name: every name in the inference log (calls to a name
        that is not registered included, marked so) and every registered one."""
        inf = read_inference(self.db, since=self._since(days), chunk_rows=self.chunk_rows)
        registered = self._registered()
        names = (*inf.models, *sorted(registered - set(inf.models)))
        stats = inference_stats(inf.events, inf.events["model"], len(names))
        items = [
            {"name": name, "registered": name in registered, **_figures(stats, g)}
            for g, name in enumerate(names)
        ]
        items.sort(key=lambda m: m["name"])
        return {"days": days, "models": items}

    def model(self, name: str, days: int | None = None) -> dict[str, Any]:
        """One model's figures with its confidence histogram; UnknownModelError (404)
        when the name is neither registered nor in the inference log."""
        inf = read_inference(
            self.db, since=self._since(days), names=[name], chunk_rows=self.chunk_rows
        )
        registered = bool(self._registered(name))
        if not registered and not len(inf):
            seen = self.db.scalar(
                "SELECT COUNT(*) AS n FROM inference_log WHERE model_name = ?", (name,)
            )
            if not seen:
                raise UnknownModelError(
                    f"no model named {name!r} is registered or has been called", field="name"
                )
        stats = inference_stats(inf.events, inf.events["model"], 1, histogram=True)
        return {"name": name, "registered": registered, "days": days, **_figures(stats, 0)}

    def storage(self) -> dict[str, Any]:
        """Models, versions, blob bytes, embeddings per model and type, database bytes."""
        return storage_summary(self.db)


@cache
def analytics_service() -> AnalyticsService:
    """Usage, per-model and storage analytics over the app's database."""
    from shared.db.app import database

    return AnalyticsService(database())
