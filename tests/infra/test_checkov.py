"""checkov over infra/ (Bicep framework, its own parser): no parsing error, no failed
check. Offline: no download of checks or guidelines (this machine reaches no such
service, and a CI run must not depend on one)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from shared.settings import ROOT
from tests.infra.bicep import BICEP_GROUP

pytestmark = pytest.mark.xdist_group(BICEP_GROUP)  # its pycep shares the grammar cache

CHECKOV = ROOT / ".tools" / "checkov-3.3.30" / "bin" / "checkov"


def test_checkov_passes_over_infra() -> None:
    assert CHECKOV.exists(), "run `make setup`: it installs checkov into .tools/"
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    done = subprocess.run(
        [str(CHECKOV), "-d", str(ROOT / "infra"), "--framework", "bicep", "--skip-download"]
        + ["--output", "json", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    reports = report if isinstance(report, list) else [report]
    for r in reports:
        summary = r.get("summary", r)
        assert summary.get("parsing_errors", 0) == 0, done.stdout[-2000:]
        assert summary.get("failed", 0) == 0, done.stdout[-4000:]
    assert done.returncode == 0, done.stderr[-2000:]
