"""Metadata filters over columns: memory per row, build time, and mask time at 1M rows.

The set has four indexed fields per row, the shape the goal names: ``genre`` (one of 50
strings), ``year`` (an integer, 1950-2024), ``draft`` (a boolean) and ``tags`` (0-3 of
20 strings, in random order). Filters of ~1% and ~50% selectivity are timed with
``MetadataFilter.mask`` (best of five samples), next to the one-row reference
``matches`` looped over every row, and ``row(i)`` (what ``include_metadata`` pays per
hit). Goal: <= 24 bytes of metadata in memory per row; a mask well under the time of a
1M x 384 search (tens of ms at most).
"""

from __future__ import annotations

import time

import numpy as np

from shared.search.metadata_filter import MetadataColumns, parse_filter

from .timing import fmt_time, per_call, table

ROWS = 1_000_000
GOAL_BYTES = 24
GENRES = [f"genre-{i:02d}" for i in range(50)]
TAGS = [f"tag-{i:02d}" for i in range(20)]

#: (name, target selectivity, filter)
FILTERS = [
    ("genre & draft", "~1%", {"genre": "genre-07", "draft": True}),
    (
        "year range & genre $in",
        "~1%",
        {"year": {"$gte": 2010, "$lt": 2020}, "genre": {"$in": GENRES[:5]}},
    ),
    ("tag & year", "~1%", {"tags": "tag-03", "year": {"$gte": 2015}}),
    ("draft", "~50%", {"draft": False}),
    ("year", "~50%", {"year": {"$lt": 1987}}),
    (
        "$or: tags $in | genre $nin & draft",
        "~50%",
        {"$or": [{"tags": {"$in": TAGS[:4]}}, {"genre": {"$nin": GENRES[:15]}, "draft": True}]},
    ),
    ("tags $ne & genre $nin", "~50%", {"tags": {"$ne": "tag-00"}, "genre": {"$nin": GENRES[:22]}}),
]


def _rows(n: int) -> list[dict]:
    rng = np.random.default_rng(19)
    genre = rng.integers(0, len(GENRES), n).tolist()
    year = rng.integers(1950, 2025, n).tolist()
    draft = (rng.random(n) < 0.5).tolist()
    count = rng.integers(0, 4, n).tolist()
    # Each row's tags: the first `count` of a random order of the 20.
    order = np.argsort(rng.random((n, len(TAGS))), axis=1)[:, :3]
    picks = [[TAGS[t] for t in row] for row in order.tolist()]
    return [
        {"genre": GENRES[g], "year": y, "draft": d, "tags": p[:c]}
        for g, y, d, p, c in zip(genre, year, draft, picks, count, strict=True)
    ]


def main() -> None:
    start = time.perf_counter()
    rows = _rows(ROWS)
    made = time.perf_counter() - start
    start = time.perf_counter()
    columns = MetadataColumns.build(rows)
    built = time.perf_counter() - start
    per_row = columns.nbytes / ROWS
    print(
        f"{ROWS:,} rows, 4 fields: {columns.nbytes / 1e6:.1f} MB = {per_row:.2f} bytes/row "
        f"(goal <= {GOAL_BYTES}: {'met' if per_row <= GOAL_BYTES else 'MISSED'}); "
        f"build {built:.2f} s (making the dicts took {made:.2f} s)"
    )
    out = []
    for n, (name, target, spec) in enumerate(FILTERS):
        f = parse_filter(spec)
        mask = f.mask(columns)
        seconds = per_call(lambda f=f: f.mask(columns))
        ref = "-"
        if n == 0:
            # The per-row reference once: what the columns save, and a cross-check.
            t0 = time.perf_counter()
            expected = [f.matches(r) for r in rows]
            ref = fmt_time(time.perf_counter() - t0)
            assert mask.tolist() == expected
        out.append([name, target, f"{mask.mean():.2%}", fmt_time(seconds), ref])
    print(
        table(
            f"mask over {ROWS:,} rows",
            ["filter", "target", "selected", "mask", "matches() loop"],
            out,
        )
    )
    picks = np.random.default_rng(5).integers(0, ROWS, 1000).tolist()
    seconds = per_call(lambda: [columns.row(i) for i in picks], repeat=3) / len(picks)
    assert all(columns.row(i) == rows[i] for i in picks)
    print(f"row(i): {fmt_time(seconds)} per row ({fmt_time(seconds * 1000)} for 1000 hits)")
