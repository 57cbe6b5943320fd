"""Timing and table helpers shared by the bench_* scripts (not a benchmark itself)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def per_call(fn: Callable[[], object], *, repeat: int = 5, min_time: float = 0.05) -> float:
    """Best-of-``repeat`` seconds per call, each sample looping until ``min_time`` passed."""
    fn()  # warm-up: caches, pools, lazy imports
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            break
        number = max(number * 2, int(number * min_time / max(elapsed, 1e-9)) + 1)
    best = elapsed / number
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def interleaved_samples(
    fns: dict[str, Callable[[], object]], *, rounds: int
) -> dict[str, list[float]]:
    """Seconds of one call of each function per round, the functions taking turns in
    each round (as ``interleaved``), for a best and a median of each."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def interleaved(
    fns: dict[str, Callable[[], object]], *, rounds: int = 5, min_time: float = 0.05
) -> dict[str, float]:
    """Best seconds per call of each function, sampled round by round in turn, so drift
    on a noisy machine (frequency, a neighbour's load, BLAS threads still spinning)
    hits every variant alike instead of whichever ran in a bad moment."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], per_call(fn, repeat=1, min_time=min_time))
    return best


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table; numbers are pre-formatted by the caller."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    out = [title, line]
    for i, row in enumerate(cells):
        out.append(
            "  ".join(
                c.rjust(w) if j else c.ljust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            out.append(line)
    return "\n".join(out)


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def blas_info() -> str:
    """Which BLAS library/kernel numpy runs, with thread count (needs threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: unknown (threadpoolctl not installed)"
    parts = [
        f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
        f"threads={i.get('num_threads')}"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return "BLAS: " + ("; ".join(parts) or "none found")
