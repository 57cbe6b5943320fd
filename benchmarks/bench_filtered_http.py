"""Filtered exact search through HTTP at 1M x 384: POST /api/search on the local host,
unfiltered vs filtered, float32 and compressed sets, next to the same call in-process.

The rows, metadata, query and filters are those of ``bench_filtered_search`` (same seed,
``bench_filters._rows`` for the four metadata fields, its ``FILTERS`` of ~1% and ~50%
selectivity). They are written to one SQLite file through ``EmbeddingRepository``, and
two local hosts serve it: one with the defaults (a set of 20,000 rows or more is searched
compressed: int8 codes, float32 rows memory-mapped for the re-score) and one with
``SEARCH_COMPRESS_FROM_ROWS`` above the row count, so its set stays float32. Each host's
first search loads the set from SQLite (timed and printed); which engine a host runs is
checked from its memory maps (a compressed set maps its rows file), so a setting that
did not take fails the run instead of timing the wrong engine. Snapshots are held off
(``SEARCH_SNAPSHOT_SETTLE_SECONDS`` of a day): the compressed host would otherwise upload
its set to Azurite in the middle of the timed requests.

The in-process path is ``SearchService.search`` over its own ``IndexCache`` of the same
file, with the same engine choice: what a request costs without the host, HTTP and JSON.

Every variant (engine x filter x path) takes one request per round, in interleaved
rounds, so a neighbour's load hits all variants alike; each round runs them in a fresh
random order, each after a short pause (on two cores a call right after another process's
search otherwise shares the CPU with that process's BLAS threads still spinning, which
at 1M moved a variant's median by up to 50%). The table gives the median and best of the
rounds, and the ratio of medians to the unfiltered search on the same engine and path
against the goals (~1%: <= 0.2x, ~50%: <= 1.2x). Every reply, warm-up and timed, must
hold the hits of a float64 brute force over the matching rows (matched with the filter's
one-row reference semantics, not the column mask the server uses); a wrong answer stops
the run.

``BENCH_ROWS`` (default 1,000,000; at least 20,000 so the default host compresses),
``BENCH_ROUNDS`` (default 20) and ``BENCH_PAUSE`` (seconds, default 0.2) size the run:
at 1M about 3-4 minutes on two cores and about 8 GB at the peak (the benchmark and both
hosts, each float32 set resident twice: in the float32 host and in-process).
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .bench_filtered_search import FILTERS, METRIC, K, _brute_force
from .bench_filters import _rows
from .timing import fmt_time, table

if TYPE_CHECKING:
    from devhost.launcher import LaunchedHost

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
PAUSE = float(os.environ.get("BENCH_PAUSE", "0.2"))  # seconds of quiet before each call
D = 384
CHUNK = 50_000  # rows per upsert_many call (one transaction each)
MODEL, TYPE = "bench", "text"
KEY = "bench"
DEFAULT_COMPRESS_FROM = 20_000  # SEARCH_COMPRESS_FROM_ROWS's default
LOAD_TIMEOUT = 900.0  # seconds: a first search loads 1M rows from SQLite
ENGINES = ("float32", "compressed")
UNFILTERED = FILTERS[0][0]  # the baseline every ratio divides by
assert FILTERS[0][1] is None, FILTERS[0]


def _fill(db_url: str, data: np.ndarray, metadata: list[dict]) -> None:
    from shared.db.connection import open_database
    from shared.db.migrate import apply_migrations
    from shared.embeddings.repository import EmbeddingRepository

    db = open_database(db_url)
    try:
        apply_migrations(db)
        repo = EmbeddingRepository(db)
        for s in range(0, len(data), CHUNK):
            block = np.ascontiguousarray(data[s : s + CHUNK], dtype="<f4")
            items = [(f"e{s + j}", block[j].tobytes()) for j in range(len(block))]
            repo.upsert_many(MODEL, TYPE, items, metadata[s : s + CHUNK])
    finally:
        db.close()


def _rows_of(hits: list) -> list[int]:
    """Row numbers of a reply's hits (entity ids are ``e<row>``)."""
    return [int(h["entity_id"][1:]) if isinstance(h, dict) else int(h.entity_id[1:]) for h in hits]


def _maps_rows_file(pid: int) -> bool:
    """Whether the process maps a compressed set's float32 rows (``rowfile.map_rows``)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return any("/search-rows/rows-" in line for line in maps.splitlines())


class _Host:
    """One local host and a keep-alive connection to it."""

    #: uvicorn closes a keep-alive connection idle for 5 s (its default); reconnect
    #: before that, outside the timed request.
    IDLE_LIMIT = 4.0

    def __init__(self, host: LaunchedHost) -> None:
        self.host = host
        self.conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=LOAD_TIMEOUT)
        self.headers = {"Content-Type": "application/json", "x-functions-key": KEY}
        self.used = 0.0

    def ready(self) -> None:
        """A connection the server has not closed for idleness."""
        if self.conn.sock is None or time.monotonic() - self.used > self.IDLE_LIMIT:
            self.conn.close()
            self.conn.connect()

    def search(self, body: bytes) -> list[int]:
        self.conn.request("POST", "/api/search", body=body, headers=self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        self.used = time.monotonic()
        if resp.status != 200:
            raise AssertionError(f"POST /api/search: {resp.status} {data[:500]!r}")
        return _rows_of(json.loads(data)["results"])


def main() -> None:
    from devhost import azurite
    from devhost.launcher import launch_app
    from shared.db.connection import open_database
    from shared.memory import release_freed_memory
    from shared.search.cache import IndexCache
    from shared.search.metadata_filter import parse_filter
    from shared.search.repository import SetRepository
    from shared.search.service import SearchService

    if ROWS < DEFAULT_COMPRESS_FROM:
        raise SystemExit(
            f"BENCH_ROWS must be >= {DEFAULT_COMPRESS_FROM:,}: below it no set compresses"
        )
    started = time.perf_counter()
    # The draws of bench_filtered_search: the same rows and query.
    rng = np.random.default_rng(19)
    data = rng.standard_normal((ROWS, D), dtype=np.float32)
    query = rng.standard_normal((1, D), dtype=np.float32)
    metadata = _rows(ROWS)
    want: dict[str, list[int]] = {}
    share: dict[str, float] = {}
    for label, spec, _goal in FILTERS:
        if spec is None:
            sel = np.arange(ROWS)
        else:
            ref = parse_filter(spec)
            sel = np.array([i for i, m in enumerate(metadata) if ref.matches(m)], dtype=np.int64)
        want[label] = _brute_force(data, query[0], sel).tolist()
        share[label] = len(sel) / ROWS
    print(
        f"{ROWS:,} x {D} rows with metadata and the float64 brute-force answers: "
        f"{time.perf_counter() - started:.1f} s"
    )
    bodies = {
        label: json.dumps(
            {"vector": query[0].tolist(), "top_k": K, "metric": METRIC}
            | ({} if spec is None else {"filter": spec})
        ).encode()
        for label, spec, _goal in FILTERS
    }

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        db_path = tmp / "bench.db"
        db_url = f"sqlite:///{db_path}"
        t0 = time.perf_counter()
        _fill(db_url, data, metadata)
        fill = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in tmp.glob("bench.db*"))
        print(
            f"SQLite filled through EmbeddingRepository.upsert_many ({CHUNK:,} rows a call): "
            f"{fill:.1f} s ({ROWS / fill:,.0f} rows/s), {size / 1e9:.2f} GB"
        )
        # The brute-force answers hold what the checks need; the hosts need the memory.
        del data, metadata
        gc.collect()
        release_freed_memory()

        storage = azurite.start(tmp / "azurite")
        settle = {"SEARCH_SNAPSHOT_SETTLE_SECONDS": "86400"}
        extra = {
            "float32": {**settle, "SEARCH_COMPRESS_FROM_ROWS": str(ROWS + 1)},
            "compressed": settle,  # the default threshold
        }
        launched = []
        try:
            for engine in ENGINES:
                home = tmp / engine
                home.mkdir()
                launched.append(
                    launch_app(
                        home,
                        storage.connection_string,
                        key=KEY,
                        sql_connection=db_url,
                        extra_env=extra[engine],
                    )
                )
            hosts = dict(zip(ENGINES, (_Host(h) for h in launched), strict=True))
            db = open_database(db_url)
            calls: dict[tuple[str, str, str], Callable[[], list[int]]] = {}
            # One load at a time, compressed first: a load holds the rows read from SQL,
            # their joined copy and the parsed metadata for a moment (~4 GB at 1M), so the
            # float32 sets, the largest to stay resident, come last.
            for engine in reversed(ENGINES):
                hosts[engine].ready()
                t0 = time.perf_counter()
                got = hosts[engine].search(bodies[UNFILTERED])
                loaded = time.perf_counter() - t0
                compressed = _maps_rows_file(hosts[engine].host.process.pid)
                if compressed != (engine == "compressed"):
                    raise AssertionError(f"the {engine} host searched a {compressed=} set")
                assert got == want[UNFILTERED], (engine, got, want[UNFILTERED])
                cache = IndexCache(
                    SetRepository(db),
                    rows_dir=tmp / f"in-process-{engine}",
                    compress_from=ROWS + 1 if engine == "float32" else DEFAULT_COMPRESS_FROM,
                )
                service = SearchService(cache, max_dim=4096, max_queries=64)
                t0 = time.perf_counter()
                service.search(query, top_k=K, metric=METRIC)
                local = time.perf_counter() - t0
                print(
                    f"{engine}: first search (loads the set from SQLite) {loaded:.1f} s "
                    f"through HTTP, {local:.1f} s in-process"
                )
                for label, spec, _goal in FILTERS:
                    calls[engine, label, "HTTP"] = lambda h=hosts[engine], b=bodies[label]: (
                        h.search(b)
                    )
                    calls[engine, label, "in-process"] = lambda s=service, f=spec: _rows_of(
                        s.search(
                            query,
                            top_k=K,
                            metric=METRIC,
                            where=None if f is None else parse_filter(f),
                        )[0]
                    )

            def run(variant: tuple[str, str, str]) -> float:
                if variant[2] == "HTTP":
                    hosts[variant[0]].ready()
                t0 = time.perf_counter()
                got = calls[variant]()
                seconds = time.perf_counter() - t0
                if got != want[variant[1]]:
                    raise AssertionError(f"{variant}: hits {got}, brute force {want[variant[1]]}")
                return seconds

            for variant in calls:  # warm-up, and every variant's answer checked once
                run(variant)
            print(
                "same hits as float64 brute force over the matching rows, both engines, "
                "both paths: " + "; ".join(f"{lbl} ({share[lbl]:.2%} of rows)" for lbl in share)
            )
            samples: dict[tuple[str, str, str], list[float]] = {v: [] for v in calls}
            order = list(calls)
            shuffle = np.random.default_rng(0)
            for _ in range(ROUNDS):
                # A fresh order each round, and a pause before each call: a variant that
                # always followed the same one would inherit its after-effects (BLAS
                # threads of the other process still spinning on these two cores).
                shuffle.shuffle(order)
                for variant in order:
                    time.sleep(PAUSE)
                    samples[variant].append(run(variant))
            db.close()
        finally:
            for h in launched:
                h.stop()
            storage.stop()

    med = {v: statistics.median(s) for v, s in samples.items()}
    best = {v: min(s) for v, s in samples.items()}

    def versus(engine: str, label: str, path: str, goal: float | None) -> str:
        ratio = med[engine, label, path] / med[engine, UNFILTERED, path]
        verdict = "" if goal is None else f" (<= {goal}x: {'met' if ratio <= goal else 'MISSED'})"
        return f"{ratio:.2f}x{verdict}"

    out = [
        [
            engine,
            label,
            fmt_time(med[engine, label, "HTTP"]),
            fmt_time(best[engine, label, "HTTP"]),
            versus(engine, label, "HTTP", goal),
            fmt_time(med[engine, label, "in-process"]),
            versus(engine, label, "in-process", goal),
        ]
        for engine in ENGINES
        for label, _spec, goal in FILTERS
    ]
    print(
        table(
            f"One {METRIC} top-{K} query over {ROWS:,} x {D}: POST /api/search on the local "
            f"host vs SearchService.search in-process ({ROUNDS} rounds, variants shuffled "
            f"and {PAUSE} s apart; ratios of medians)",
            [
                "set",
                "filter",
                "HTTP median",
                "HTTP best",
                "HTTP vs unfiltered",
                "in-proc median",
                "in-proc vs unfiltered",
            ],
            out,
        )
    )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
