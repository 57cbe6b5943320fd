"""Filtered exact search at 1M x 384: one query, unfiltered vs filtered, float32 and
compressed sets.

The sets are built in this process as the search cache builds them (``cache.py``): a
float32 ``LoadedSet`` over the row-major rows, and a compressed one (int8 codes, the
float32 rows in a memory-mapped file for the re-score), both with the same metadata of
four fields per row (``bench_filters`` makes it: genre, year, draft, tags). Each timed
call is ``LoadedSet.search`` with a parsed filter, so the mask over the metadata columns
is paid inside the time, as a request pays it. Variants run in interleaved rounds (best
of each), so a neighbour's load hits every variant alike.

Goals: a ~1%-selective filter <= 0.2x the unfiltered time, a ~50%-selective one <= 1.2x,
on both engines. A cross-check makes sure both engines return the same hits as a
float64 brute force over the matching rows.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from shared.search import exact as core
from shared.search import quantized
from shared.search.loaded import LoadedSet
from shared.search.metadata_filter import MetadataColumns, parse_filter
from shared.search.rowfile import write_rows
from shared.vectors.pool import default_pool

from .bench_filters import _rows
from .timing import fmt_time, interleaved, table

ROWS = 1_000_000
D = 384
K = 10
METRIC = "cosine"  # the API's default
THREADS = 2
#: (label, filter or None, goal as a ratio of the unfiltered time)
FILTERS: list[tuple[str, dict | None, float | None]] = [
    ("unfiltered", None, None),
    ("~1%: genre & draft", {"genre": "genre-07", "draft": True}, 0.2),
    ("~50%: draft", {"draft": False}, 1.2),
]


def _brute_force(data: np.ndarray, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """float64 cosine top-k among ``rows`` (ties by row number), in blocks: all 1M rows
    in float64 at once would take 3 GB."""
    q64 = q.astype(np.float64)
    sims = np.empty(len(rows))
    for s in range(0, len(rows), 65_536):
        x = data[rows[s : s + 65_536]].astype(np.float64)
        sims[s : s + len(x)] = (x @ q64) / np.linalg.norm(x, axis=1)
    return rows[np.lexsort((rows, -sims))[:K]]


def main() -> None:
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    rng = np.random.default_rng(19)
    data = rng.standard_normal((ROWS, D), dtype=np.float32)
    query = rng.standard_normal((1, D), dtype=np.float32)
    columns = MetadataColumns.build(_rows(ROWS))
    ids = [f"e{i}" for i in range(ROWS)]
    pool = default_pool()
    filters = [
        (label, None if spec is None else parse_filter(spec), goal) for label, spec, goal in FILTERS
    ]
    with threadpool_limits(THREADS, user_api="blas"), tempfile.TemporaryDirectory() as tmp:
        f32 = LoadedSet("m", "t", 1, ids, core.prepare(data, "dot"), metadata=columns)
        mapped = write_rows(Path(tmp), data)
        int8 = LoadedSet("m", "t", 1, ids, None, quantized.quantize(mapped, keep=mapped), columns)
        built = time.perf_counter() - started
        print(f"{ROWS:,} x {D} rows, float32 and compressed, with metadata: built in {built:.1f} s")

        checked = []
        for label, where, _goal in filters:
            sel = np.arange(ROWS) if where is None else np.flatnonzero(where.mask(columns))
            want = _brute_force(data, query[0], sel)
            for name, loaded in (("float32", f32), ("compressed", int8)):
                got = loaded.search(query, K, METRIC, pool, where)[0].indices
                assert np.array_equal(got, want), (label, name, got, want)
            checked.append(f"{label} ({len(sel) / ROWS:.2%} of rows)")
        print("same hits as float64 brute force over the matching rows: " + "; ".join(checked))

        calls = {
            (name, label): (lambda s=loaded, w=where: s.search(query, K, METRIC, pool, w))
            for name, loaded in (("float32", f32), ("compressed", int8))
            for label, where, _goal in filters
        }
        best = interleaved(
            {f"{n}|{lbl}": fn for (n, lbl), fn in calls.items()}, rounds=5, min_time=0.3
        )
    out = []
    for name in ("float32", "compressed"):
        base = best[f"{name}|unfiltered"]
        for label, _where, goal in filters:
            t = best[f"{name}|{label}"]
            ratio = t / base
            verdict = (
                "" if goal is None else f" (<= {goal}x: {'met' if ratio <= goal else 'MISSED'})"
            )
            out.append([name, label, fmt_time(t), f"{ratio:.2f}x{verdict}"])
    print(
        table(
            f"One {METRIC} top-{K} query over {ROWS:,} x {D}, filter mask included "
            f"({THREADS} BLAS threads, best of 5 interleaved rounds)",
            ["set", "filter", "time", "vs unfiltered"],
            out,
        )
    )


if __name__ == "__main__":
    main()
