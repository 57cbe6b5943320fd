"""The deploy package: what .funcignore keeps, installed with requirements.txt alone in a
fresh venv, imports every module of `shared` and indexes every function.

This is what Azure runs. A module of `shared` that imports a dev-only tool, or a
function that only indexes with the local host's packages around, fails here. The venv
is built once per content of requirements.txt (under .tools/), so a clean clone builds
it and later runs reuse it. It is built without pip of its own (the test venv's pip
installs into it) and without compiling every installed file to bytecode: the probe
compiles what it imports. That halves the build and proves the same thing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pathspec
import pytest

from shared.settings import ROOT

PROBE = """
import importlib, json, pkgutil, sys
import function_app, shared
modules = sorted(m.name for m in pkgutil.walk_packages(shared.__path__, "shared."))
for name in modules:
    importlib.import_module(name)
out = {}
for fn in function_app.app.get_functions():
    meta = json.loads(fn.get_function_json())
    trigger = next(b for b in meta["bindings"] if b["type"].endswith("Trigger"))
    out[fn.get_function_name()] = trigger["type"]
dev_only = sorted(m for m in ("devhost", "tests", "pytest", "uvicorn") if m in sys.modules)
from shared.http.routing import ROUTES
report = {"functions": out, "modules": modules, "dev_only": dev_only, "routes": len(ROUTES)}
print(json.dumps(report))
"""


def package_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    ignore = pathspec.GitIgnoreSpec.from_lines((ROOT / ".funcignore").read_text().splitlines())
    return sorted(f for f in listed if (ROOT / f).is_file() and not ignore.match_file(f))


def package_venv() -> Path:
    requirements = (ROOT / "requirements.txt").read_bytes()
    venv = ROOT / ".tools" / f"package-venv-{hashlib.sha256(requirements).hexdigest()[:16]}"
    venv.parent.mkdir(exist_ok=True)
    # Two test runs at once on one clone build it once: the second waits for the first.
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".installed").exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        install = [sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install"]
        subprocess.run(
            [*install, "--quiet", "--no-compile", "-r", str(ROOT / "requirements.txt")],
            check=True,
        )
        (venv / ".installed").touch()
    return venv


def probe(python: str, cwd: Path) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run(
        [python, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_funcignore_leaves_out_everything_that_only_runs_on_a_developer_machine() -> None:
    files = package_files()
    assert "function_app.py" in files and "host.json" in files and "requirements.txt" in files
    assert any(f.startswith("shared/") for f in files)
    for left_out in ("tests/", "benchmarks/", "devhost/", "scripts/", ".ci/", "infra/"):
        assert not any(f.startswith(left_out) for f in files), left_out
    for left_out in ("requirements-dev.txt", "local.settings.sample.json", "Makefile"):
        assert left_out not in files


@pytest.mark.timeout(900)
def test_the_package_indexes_every_function_with_requirements_txt_alone(tmp_path: Path) -> None:
    package = tmp_path / "package"
    for name in package_files():
        target = package / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    deployed = probe(str(package_venv() / "bin/python"), package)
    here = probe(sys.executable, ROOT)
    assert deployed["dev_only"] == []
    assert deployed["functions"] == here["functions"]
    assert deployed["modules"] == here["modules"]
    by_type: dict[str, int] = {}
    for trigger in deployed["functions"].values():
        by_type[trigger] = by_type.get(trigger, 0) + 1
    assert by_type["queueTrigger"] == 1 and by_type["blobTrigger"] == 1
    assert by_type["httpTrigger"] == deployed["routes"] >= 25  # every declared route
