"""Readiness: does each part the app depends on answer?"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    part: str
    ok: bool
    detail: str


def _run(part: str, probe: Callable[[], object]) -> Check:
    try:
        probe()
    except Exception as exc:  # the reason is the answer
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Check(part, False, f"{type(exc).__name__}: {reason}"[:300])
    return Check(part, True, "ok")


def readiness(
    database: Callable[[], Any], blob_service: Callable[[], Any], queue_service: Callable[[], Any]
) -> list[Check]:
    """Probe SQL, Blob and Queue storage; each failure names its part.

    Takes factories so that a setting that cannot even build a client is reported
    as that part failing, not as a 500.
    """

    def sql() -> None:
        database().scalar("SELECT 1 AS one")

    def blobs() -> None:
        next(iter(blob_service().list_containers(results_per_page=1, timeout=5)), None)

    def queues() -> None:
        next(iter(queue_service().list_queues(results_per_page=1, timeout=5)), None)

    return [_run("sql", sql), _run("blob_storage", blobs), _run("queue_storage", queues)]
