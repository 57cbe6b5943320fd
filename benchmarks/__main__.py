"""Run every ``benchmarks/bench_*.py`` module's ``main()`` in name order, or the named ones.

``python -m benchmarks`` runs all; ``python -m benchmarks kernels search`` runs
``bench_kernels`` then ``bench_search``.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def available() -> list[str]:
    """Benchmark names (``bench_<name>.py`` next to this file), sorted."""
    here = Path(__file__).resolve().parent
    return sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    names = available()
    chosen = argv or names
    unknown = [n for n in chosen if n.removeprefix("bench_") not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}")
        return 2
    for name in chosen:
        module = importlib.import_module(f"benchmarks.bench_{name.removeprefix('bench_')}")
        print(f"\n=== {module.__name__} ===", flush=True)
        start = time.perf_counter()
        module.main()
        print(f"({module.__name__} took {time.perf_counter() - start:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
