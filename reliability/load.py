"""HTTP load with locust, headless, in a subprocess bounded in time; figures per route from
its CSV statistics."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from reliability.seed import SEARCH_MODEL, SEARCH_TYPE, InferTarget

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass(frozen=True)
class RouteFigures:
    route: str  # "POST /api/search"
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: tuple[str, ...] = ()  # distinct failure texts, with counts


@dataclass(frozen=True)
class LoadFigures:
    seconds: int
    users: int
    routes: tuple[RouteFigures, ...]

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.routes)


def run_locust(
    origin: str,
    *,
    key: str,
    dim: int,
    target: InferTarget,
    seconds: int,
    users: int,
    out_dir: Path,
) -> LoadFigures:
    """`users` clients for `seconds` against `origin` (loopback). Locust stops by itself;
    the subprocess is killed if it overruns by a minute. Users spread evenly over the three
    routes, so there must be at least three."""
    if users < 3:
        raise ValueError(f"at least 3 users (one per route), got {users}")
    prefix = out_dir / "locust"
    env = {
        **os.environ,
        "RELIABILITY_KEY": key,
        "RELIABILITY_DIM": str(dim),
        "RELIABILITY_SEARCH_MODEL": SEARCH_MODEL,
        "RELIABILITY_SEARCH_TYPE": SEARCH_TYPE,
        "RELIABILITY_INFER_MODEL": target.name,
        "RELIABILITY_INFER_INPUT": target.input_name,
        "RELIABILITY_INFER_FEATURES": str(target.features),
    }
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        origin,
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(prefix),
        "--only-summary",
        "--exit-code-on-error",
        "0",
    ]
    with open(out_dir / "locust.log", "wb") as log:
        done = subprocess.run(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=seconds + 60
        )
    if done.returncode != 0:
        tail = (out_dir / "locust.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"locust exited with {done.returncode}:\n{tail}")
    return LoadFigures(seconds, users, read_stats(prefix))


def read_stats(prefix: Path) -> tuple[RouteFigures, ...]:
    """Per-route rows of `<prefix>_stats.csv` (the Aggregated row left out), with the
    failure texts of `<prefix>_failures.csv`."""
    errors: dict[str, list[str]] = {}
    failures_csv = Path(f"{prefix}_failures.csv")
    if failures_csv.exists():
        with failures_csv.open(newline="") as f:
            for row in csv.DictReader(f):
                route = f"{row['Method']} {row['Name']}"
                errors.setdefault(route, []).append(f"{row['Occurrences']}x {row['Error']}")
    routes = []
    with Path(f"{prefix}_stats.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            route = f"{row['Type']} {row['Name']}"
            routes.append(
                RouteFigures(
                    route=route,
                    requests=int(row["Request Count"]),
                    failures=int(row["Failure Count"]),
                    rps=float(row["Requests/s"]),
                    p50_ms=_ms(row["50%"]),
                    p99_ms=_ms(row["99%"]),
                    errors=tuple(errors.get(route, ())),
                )
            )
    return tuple(sorted(routes, key=lambda r: r.route))


def _ms(raw: str) -> float:
    return float(raw) if raw not in ("", "N/A") else float("nan")
