"""The fault and hostile-input tests, run by pytest in a subprocess; their outcomes come
back as data for the report. Absent suites are fine: the report says none ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Outcome:
    nodeid: str
    outcome: str  # passed, failed, skipped (an error in setup or teardown is "failed")
    happened: str
    message: str
    seconds: float

    @property
    def group(self) -> str:
        """`fault` or `input` (hostile input), from where the test lives; else `other`."""
        path = self.nodeid.split("::")[0].lower()
        if "fault" in path:
            return "fault"
        if any(word in path for word in ("hostile", "input", "fuzz", "injection")):
            return "input"
        return "other"

    @property
    def name(self) -> str:
        return self.nodeid.split("::", 1)[-1]


@dataclass(frozen=True)
class SuiteResult:
    outcomes: tuple[Outcome, ...]
    returncode: int  # pytest's: 0 passed, 1 failures, 5 nothing collected

    @property
    def ok(self) -> bool:
        return self.returncode in (0, 5) and all(o.outcome != "failed" for o in self.outcomes)


def run_suites(out_dir: Path, root: Path = ROOT, timeout: float = 1800) -> SuiteResult:
    """pytest over `root/tests/` keeping only the reliability tests (the plugin chooses)."""
    out = out_dir / "outcomes.jsonl"
    out.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "reliability.pytest_outcomes",
        "tests",
    ]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "RELIABILITY_OUTCOMES": str(out), "PYTHONPATH": path}
    with open(out_dir / "pytest.log", "wb") as log:
        done = subprocess.run(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
        )
    return SuiteResult(read_outcomes(out), done.returncode)


def read_outcomes(path: Path) -> tuple[Outcome, ...]:
    """One Outcome per test; a failed setup or teardown fails the test it belongs to."""
    if not path.exists():
        return ()
    merged: dict[str, Outcome] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = json.loads(raw)
        outcome = "failed" if line["outcome"] == "failed" else line["outcome"]
        if line["nodeid"] in merged and merged[line["nodeid"]].outcome == "failed":
            continue
        merged[line["nodeid"]] = Outcome(
            line["nodeid"], outcome, line["happened"], line["message"], line["seconds"]
        )
    return tuple(merged.values())
