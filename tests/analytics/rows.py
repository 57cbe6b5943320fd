"""Real inference_log and jobs rows for the analytics tests: written by hand at chosen
instants, or at random over the last ~200 days before a fixed "now"."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from shared.db.connection import Database

#: "Now" for the analytics clock in these tests: a fixed instant, so windows and buckets
#: are reproducible. Nothing is compared with the wall clock.
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)

#: Pairs of instants 1 ms apart across a UTC day, ISO week and month edge (Sunday ->
#: Monday 1 June), a month but not week edge (28 Feb -> Sunday 1 March), a year edge.
EDGES = (
    ("2026-05-31T23:59:59.999", "2026-06-01T00:00:00.000"),
    ("2026-02-28T23:59:59.999", "2026-03-01T00:00:00.000"),
    ("2025-12-31T23:59:59.999", "2026-01-01T00:00:00.000"),
)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def add_inferences(db: Database, rows: Sequence[tuple]) -> None:
    """rows: (model_name, latency_ms, rows, confidence or None, outcome, created_at)."""
    db.executemany(
        "INSERT INTO inference_log (model_name, model_version, latency_ms, rows, confidence, "
        "outcome, created_at) VALUES (?, 1, ?, ?, ?, ?, ?)",
        list(rows),
    )


def add_jobs(db: Database, rows: Sequence[tuple]) -> None:
    """rows: (id, kind, status, attempts, created_at, started_at, finished_at)."""
    db.executemany(
        "INSERT INTO jobs (id, kind, status, attempts, created_at, started_at, finished_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*r, r[4]) for r in rows],
    )


def random_inferences(n: int, seed: int = 7) -> list[tuple]:
    """Events over the last ~200 days before NOW: repeated latencies (ties), missing
    confidences, confidences on bin edges, 0 and 1, failures; plus the EDGES pairs."""
    rnd = random.Random(seed)
    names = ("iris", "minilm", "resnet", "ghost")
    edges_conf = (0.0, 0.1, 0.3, 0.7, 0.9, 0.99, 1.0)
    out = []
    for i in range(n):
        name = names[min(int(rnd.expovariate(1.0)), len(names) - 1)]
        latency = round(rnd.lognormvariate(1.5, 0.8), 3) if i % 9 else 4.0
        confidence = (
            None if i % 5 == 0 else (rnd.choice(edges_conf) if i % 7 == 0 else rnd.random())
        )
        outcome = "failed" if rnd.random() < 0.1 else "succeeded"
        when = NOW - timedelta(milliseconds=rnd.randrange(0, 200 * 86_400_000))
        out.append((name, latency, rnd.randint(1, 32), confidence, outcome, stamp(when)))
    for k, (before, after) in enumerate(EDGES):
        out.append(("iris", 1.0 + k, 1, 0.5, "succeeded", before))
        out.append(("iris", 2.0 + k, 1, 0.5, "failed", after))
    return out


def random_jobs(n: int, seed: int = 11) -> list[tuple]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        created = NOW - timedelta(milliseconds=rnd.randrange(0, 200 * 86_400_000))
        status = rnd.choice(("queued", "running", "succeeded", "failed"))
        started = created + timedelta(milliseconds=rnd.randrange(1, 5000))
        finished = started + timedelta(milliseconds=rnd.randrange(1, 60000))
        out.append(
            (
                f"job-{i}",
                rnd.choice(("model", "embeddings", "embed_text")),
                status,
                rnd.randint(0, 5),
                stamp(created),
                None if status == "queued" else stamp(started),
                stamp(finished) if status in ("succeeded", "failed") else None,
            )
        )
    return out
