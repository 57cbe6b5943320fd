"""Columnar records vs one Python object per event, 1M inference events.

Both sides start from the very same thing: the rows the SQL driver hands over for
`shared.analytics.reader`'s SELECT (epoch ms, latency, confidence, rows, model code,
outcome code). The object side makes one frozen, slotted dataclass per row (a class
per event, the usual object model); the columnar side turns each 64k-row chunk into
structured records with one `np.fromiter` (what the reader does) and freezes the result.
Then both compute per-model p95 latency (nearest rank) and mean confidence, and the
answers are checked equal.

Measured in one run, side by side: build time (best of 3), aggregation time (best of 3),
tracemalloc peak while building and the bytes kept afterwards, GC collections during the
build and aggregation (the collector on, as in the app). Also, for context, the same
read end to end from a SQLite file, where the driver's own per-row work weighs on both.
Goal: >= 20x faster, >= 5x less memory.
"""

from __future__ import annotations

import gc
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.analytics.aggregate import Groups, nearest_rank
from shared.analytics.reader import DEFAULT_CHUNK_ROWS, read_inference, to_records
from shared.analytics.records import INFERENCE_DTYPE, OUTCOMES, frozen
from shared.db.connection import Database, open_database
from shared.db.migrate import apply_migrations

from .timing import fmt_time, table

EVENTS = 1_000_000
MODELS = ("bert-base", "iris", "minilm", "resnet50", "t5-small", "whisper", "xgb", "yolo")
GOAL_SPEED, GOAL_MEMORY = 20.0, 5.0


@dataclass(frozen=True, slots=True)
class InferenceEvent:
    """One event as an object: the design ``shared.analytics.records`` does without."""

    ts_ms: int
    latency_ms: float
    confidence: float | None
    rows: int
    model: str
    outcome: str


def driver_rows(n: int, seed: int = 1) -> list[tuple]:
    """Rows shaped as the reader's SELECT returns them, in arrival order (models
    interleaved, a few used far more than others), as a table scan reads them."""
    rnd = random.Random(seed)
    start = 1_780_000_000_000
    weights = [2.0**-i for i in range(len(MODELS))]
    codes = rnd.choices(range(len(MODELS)), weights=weights, k=n)
    return [
        (
            start + i * 7_776,  # ~90 days over 1M events
            round(rnd.lognormvariate(2.0, 0.7), 3),
            None if rnd.random() < 0.2 else rnd.random(),
            rnd.randint(1, 32),
            code,
            1 if rnd.random() < 0.05 else 0,
        )
        for i, code in enumerate(codes)
    ]


# -- the two designs ----------------------------------------------------------------
def build_objects(rows: list[tuple]) -> list[InferenceEvent]:
    names, outcomes, make = MODELS, OUTCOMES, InferenceEvent
    return [make(ts, lat, conf, n, names[m], outcomes[o]) for ts, lat, conf, n, m, o in rows]


def build_columnar(rows: list[tuple], chunk: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    parts = [to_records(rows[i : i + chunk], INFERENCE_DTYPE) for i in range(0, len(rows), chunk)]
    return frozen(np.concatenate(parts))


def aggregate_objects(events: list[InferenceEvent]) -> dict[str, tuple[float, float | None]]:
    latencies: dict[str, list[float]] = {}
    confidence: dict[str, list[float]] = {}
    for e in events:
        latencies.setdefault(e.model, []).append(e.latency_ms)
        if e.confidence is not None:
            confidence.setdefault(e.model, []).append(e.confidence)
    out = {}
    for model, values in latencies.items():
        values.sort()
        conf = confidence.get(model)
        mean = sum(conf) / len(conf) if conf else None
        out[model] = (values[nearest_rank(len(values), 95) - 1], mean)
    return out


def aggregate_columnar(events: np.ndarray) -> dict[str, tuple[float, float | None]]:
    codes = events["model"].astype(np.intp)
    groups = Groups.of(codes, len(MODELS))
    p95 = groups.percentiles(events["latency_ms"], (95,))[:, 0]
    count, mean = groups.means(events["confidence"])
    return {
        MODELS[g]: (float(p95[g]), float(mean[g]) if count[g] else None)
        for g in range(len(MODELS))
        if not np.isnan(p95[g])
    }


# -- measuring ----------------------------------------------------------------------
def best_of(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        result = None
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def gc_runs(fn: Callable[[], Any]) -> int:
    gc.collect()
    before = sum(s["collections"] for s in gc.get_stats())
    kept = fn()
    runs = sum(s["collections"] for s in gc.get_stats()) - before
    del kept
    return runs


def memory(fn: Callable[[], Any]) -> tuple[int, int]:
    """(tracemalloc peak above the start while `fn` runs, bytes still held by its result)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        kept = fn()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return peak - base, current - base


def same_answers(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k][0] == b[k][0] and np.isclose(a[k][1], b[k][1], rtol=1e-12, atol=0) for k in a
    )


def sqlite_file(folder: Path, rows: list[tuple]) -> Database:
    """The same events as inference_log rows in a SQLite file."""
    db = open_database(f"sqlite:///{folder / 'bench.db'}")
    apply_migrations(db)
    stamp = np.datetime_as_string(
        np.array([r[0] for r in rows], dtype="datetime64[ms]"), unit="ms"
    ).tolist()
    db.executemany(
        "INSERT INTO inference_log (model_name, model_version, latency_ms, rows, confidence, "
        "outcome, created_at) VALUES (?, 1, ?, ?, ?, ?, ?)",
        [
            (MODELS[m], lat, n, conf, OUTCOMES[o], ts)
            for (_, lat, conf, n, m, o), ts in zip(rows, stamp, strict=True)
        ],
    )
    return db


def read_objects(db: Database, chunk: int = DEFAULT_CHUNK_ROWS) -> list[InferenceEvent]:
    """The object design reading the same SELECT: one dataclass per fetched row."""
    out: list[InferenceEvent] = []
    epoch = db.dialect.epoch_ms("created_at")
    with db.transaction(readonly=True) as conn:
        cursor = conn.execute(
            f"SELECT {epoch}, latency_ms, confidence, rows, model_name, outcome "  # noqa: S608
            "FROM inference_log"
        )
        while rows := cursor.fetchmany(chunk):
            out.extend(
                InferenceEvent(int(ts), lat, conf, n, m, o) for ts, lat, conf, n, m, o in rows
            )
    return out


def in_memory(rows: list[tuple]) -> dict[str, dict[str, Any]]:
    """Build and aggregate from the same driver rows: time and GC collections."""
    results: dict[str, dict[str, Any]] = {}
    designs = {
        "objects": (build_objects, aggregate_objects),
        "columnar": (build_columnar, aggregate_columnar),
    }
    for name, (build, aggregate) in designs.items():
        seconds, built = best_of(lambda build=build: build(rows))
        agg_seconds, answer = best_of(lambda built=built, aggregate=aggregate: aggregate(built))
        del built
        gcs = gc_runs(lambda build=build, aggregate=aggregate: aggregate(build(rows)))
        results[name] = {"build": seconds, "agg": agg_seconds, "answer": answer, "gc": gcs}
    assert same_answers(results["objects"]["answer"], results["columnar"]["answer"])
    return results


def from_sqlite(rows: list[tuple]) -> dict[str, dict[str, Any]]:
    """Read the events from a SQLite file, each design owning every value it keeps:
    time, tracemalloc peak and bytes kept, GC collections."""
    readers = {"objects": read_objects, "columnar": lambda db: read_inference(db).events}
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite_file(Path(tmp), rows)
        try:
            for name, read in readers.items():
                seconds, built = best_of(lambda read=read: read(db), repeat=2)
                assert len(built) == len(rows)
                del built
                peak, kept = memory(lambda read=read: read(db))
                gcs = gc_runs(lambda read=read: read(db))
                results[name] = {"time": seconds, "peak": peak, "kept": kept, "gc": gcs}
        finally:
            db.close()
    return results


def main() -> None:
    rows = driver_rows(EVENTS)
    mem = in_memory(rows)
    disk = from_sqlite(rows)
    del rows
    o, c = mem["objects"], mem["columnar"]
    total_o, total_c = o["build"] + o["agg"], c["build"] + c["agg"]
    so, sc = disk["objects"], disk["columnar"]
    mb = 1024 * 1024

    def goal(ratio: float, want: float) -> str:
        return "met" if ratio >= want else "MISSED"

    print(
        table(
            f"{EVENTS:,} inference events, {len(MODELS)} models: one frozen slotted dataclass "
            "per event vs numpy structured records; same driver rows in, same answers out",
            ["figure", "objects", "columnar", "ratio", "goal"],
            [
                [
                    "build",
                    fmt_time(o["build"]),
                    fmt_time(c["build"]),
                    f"{o['build'] / c['build']:.1f}x",
                    "",
                ],
                [
                    "per-model p95 + mean confidence",
                    fmt_time(o["agg"]),
                    fmt_time(c["agg"]),
                    f"{o['agg'] / c['agg']:.1f}x",
                    goal(o["agg"] / c["agg"], GOAL_SPEED),
                ],
                [
                    "build + aggregate",
                    fmt_time(total_o),
                    fmt_time(total_c),
                    f"{total_o / total_c:.1f}x",
                    goal(total_o / total_c, GOAL_SPEED),
                ],
                ["GC collections (build + aggregate)", str(o["gc"]), str(c["gc"]), "", ""],
            ],
        )
    )
    print()
    print(
        table(
            "The same events read from a SQLite file (inference_log), each design owning "
            "every value it keeps",
            ["figure", "objects", "columnar", "ratio", "goal"],
            [
                [
                    "read + build",
                    fmt_time(so["time"]),
                    fmt_time(sc["time"]),
                    f"{so['time'] / sc['time']:.1f}x",
                    "",
                ],
                [
                    "tracemalloc peak",
                    f"{so['peak'] / mb:.1f} MB",
                    f"{sc['peak'] / mb:.1f} MB",
                    f"{so['peak'] / sc['peak']:.1f}x",
                    goal(so["peak"] / sc["peak"], GOAL_MEMORY),
                ],
                [
                    "bytes kept",
                    f"{so['kept'] / mb:.1f} MB",
                    f"{sc['kept'] / mb:.1f} MB",
                    f"{so['kept'] / sc['kept']:.1f}x",
                    goal(so["kept"] / sc["kept"], GOAL_MEMORY),
                ],
                ["GC collections", str(so["gc"]), str(sc["gc"]), "", ""],
            ],
        )
    )
    print(f"goals: >= {GOAL_SPEED:.0f}x faster, >= {GOAL_MEMORY:.0f}x less memory")


if __name__ == "__main__":
    main()
