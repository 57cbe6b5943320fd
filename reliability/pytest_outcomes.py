"""A pytest plugin the runner loads (`-p reliability.pytest_outcomes`): it keeps only the
reliability tests (under `tests/reliability/`, or marked `reliability`) and writes one JSON
line per outcome to `$RELIABILITY_OUTCOMES`, with what the test says happened.

A test states what happened with `record_property("happened", "...")`; otherwise the
first line of its docstring stands for it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

_DOCS: dict[str, str] = {}


def chosen(nodeid: str, marked: bool) -> bool:
    return marked or nodeid.replace("\\", "/").startswith("tests/reliability/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        marked = item.get_closest_marker("reliability") is not None
        (keep if chosen(item.nodeid, marked) else drop).append(item)
        doc = (getattr(getattr(item, "obj", None), "__doc__", None) or "").strip()
        _DOCS[item.nodeid] = " ".join(doc.split("\n\n")[0].split())
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def _message(report: pytest.TestReport) -> str:
    longrepr: Any = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (file, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0]
    return str(longrepr).strip().splitlines()[-1]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = os.environ.get("RELIABILITY_OUTCOMES")
    if not path:
        return
    if report.when != "call" and report.outcome == "passed":
        return  # setup and teardown that went well say nothing
    if report.when == "teardown" and report.outcome == "skipped":
        return
    props = dict(report.user_properties)
    line = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "seconds": round(report.duration, 2),
        "happened": str(props.get("happened") or _DOCS.get(report.nodeid, "")),
        "message": _message(report),
    }
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
