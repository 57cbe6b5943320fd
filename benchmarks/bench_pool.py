"""Pooled vs unpooled search path: temporary bytes, page faults, GC runs and time per request.

Both sides run the very same code (decode the query, ``search.search`` = gemv + top-k +
float64 re-score); the unpooled side gets a ``BufferPool(max_bytes=0)``, which keeps
nothing, so every score/scratch buffer is a fresh allocation -- what the code would do
without a pool. "temp bytes" is tracemalloc's peak above the steady baseline during one
request (numpy reports its buffers to tracemalloc); minor page faults and GC runs are
averaged over the requests; time is the best of five samples.
Goal: >= 90% fewer temporary bytes per request in steady state.
"""

from __future__ import annotations

import gc
import resource
import tracemalloc
from collections.abc import Callable

import numpy as np

from shared.search import exact as search
from shared.vectors import codec
from shared.vectors.pool import BufferPool

from .timing import fmt_time, per_call, table

D = 384
SIZES = (20_000, 100_000, 1_000_000)
REQUESTS = 40
GOAL = 0.90


def _request(prepared: search.SearchMatrix, wire: dict, pool: BufferPool) -> Callable[[], None]:
    def run() -> None:
        q = codec.decode_vector(wire, "vector", max_dim=D, pool=pool)
        try:
            search.search(prepared, q, 10, pool=pool)
        finally:
            pool.give_back(q)

    return run


def _measure(run: Callable[[], None], requests: int) -> dict[str, float]:
    for _ in range(3):
        run()  # warm-up: the pool fills
    gc.collect()
    gc_before = sum(s["collections"] for s in gc.get_stats())
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(requests):
        run()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / requests
    gcs = sum(s["collections"] for s in gc.get_stats()) - gc_before
    tracemalloc.start()
    try:
        run()
        peaks = []
        for _ in range(min(requests, 10)):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            run()
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()
    elapsed = per_call(run, repeat=5, min_time=0.1)  # best-of: the machine may be shared
    return {"time": elapsed, "faults": faults, "gc": gcs, "bytes": float(np.median(peaks))}


def main() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for n in SIZES:
        prepared = search.prepare(rng.standard_normal((n, D), dtype=np.float32), "dot")
        wire = codec.encode_vector(rng.standard_normal(D, dtype=np.float32), "b64")
        pooled = _measure(_request(prepared, wire, BufferPool()), REQUESTS)
        unpooled = _measure(_request(prepared, wire, BufferPool(max_bytes=0)), REQUESTS)
        saved = 1 - pooled["bytes"] / unpooled["bytes"]
        rows.append(
            [
                f"{n:,}",
                f"{unpooled['bytes'] / 1024:,.0f} KiB",
                f"{pooled['bytes'] / 1024:,.0f} KiB",
                f"{saved:.1%}",
                "met" if saved >= GOAL else "MISSED",
                f"{unpooled['faults']:.0f}",
                f"{pooled['faults']:.0f}",
                f"{unpooled['gc']:.0f} / {pooled['gc']:.0f}",
                fmt_time(unpooled["time"]),
                fmt_time(pooled["time"]),
                f"{unpooled['time'] / pooled['time']:.2f}x",
            ]
        )
        del prepared
    print(
        table(
            f"Search request (decode b64 query + top-10 dot scan, d={D}), pooled vs unpooled, "
            f"{REQUESTS} requests each (goal: >= {GOAL:.0%} fewer temp bytes)",
            [
                "rows",
                "temp bytes unpooled",
                "pooled",
                "saved",
                "goal",
                "page faults/req unpooled",
                "pooled",
                "GC runs unpooled / pooled",
                "time unpooled",
                "pooled",
                "speed-up",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
