"""Readiness: does each part the app depends on answer, within a probe's patience?

Probes have short timeouts in Azure and Kubernetes alike, so the answer comes within a
fixed deadline whatever is down: each part is probed on its own thread, and a part
that has not answered by then is reported as timed out (its thread finishes, or hangs,
on its own; a part still hanging from an earlier probe is not probed again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from shared.errors import HartonomousError
from shared.settings import ConfigError

OK, FAILED, TIMED_OUT, NOT_CONFIGURED = "ok", "failed", "timed out", "not configured"


@dataclass(frozen=True)
class Check:
    part: str
    state: str  # OK, FAILED, TIMED_OUT or NOT_CONFIGURED
    detail: str  # the reason, with hosts and messages: for callers who hold a key
    setting: str | None = None  # the missing or invalid setting, when that is the reason

    @property
    def ok(self) -> bool:
        return self.state == OK

    @property
    def public(self) -> str:
        """What anyone may read: the state, and a setting's name (never a host or message)."""
        return f"{self.state}: {self.setting}" if self.setting else self.state


def _failure(part: str, exc: BaseException) -> Check:
    if isinstance(exc, ConfigError):
        return Check(part, NOT_CONFIGURED, str(exc), exc.setting)
    text = exc.reason if isinstance(exc, HartonomousError) else str(exc)  # the why, in full
    reason = text.splitlines()[0] if text else ""
    return Check(part, FAILED, f"{type(exc).__name__}: {reason}".rstrip(": ")[:300])


class _Probe(threading.Thread):
    def __init__(self, part: str, probe: Callable[[], object]) -> None:
        super().__init__(name=f"ready-{part}", daemon=True)
        self.part = part
        self.probe = probe
        self.result: Check | None = None

    def run(self) -> None:
        try:
            self.probe()
        except BaseException as exc:  # the reason is the answer
            self.result = _failure(self.part, exc)
        else:
            self.result = Check(self.part, OK, "ok")


class Readiness:
    """Probes each part at once on its own thread and answers by `timeout` seconds."""

    def __init__(self, probes: Mapping[str, Callable[[], object]], timeout: float = 1.5) -> None:
        self.probes = dict(probes)
        self.timeout = timeout
        self._hanging: dict[str, _Probe] = {}
        self._lock = threading.Lock()

    def check(self) -> list[Check]:
        deadline = time.monotonic() + self.timeout
        started: dict[str, _Probe | Check] = {}
        with self._lock:
            for part, probe in self.probes.items():
                previous = self._hanging.get(part)
                if previous is not None and previous.is_alive():
                    started[part] = Check(
                        part, TIMED_OUT, "an earlier probe of this part has not returned yet"
                    )
                    continue
                thread = _Probe(part, probe)
                thread.start()
                started[part] = thread
        checks = []
        for part, item in started.items():
            if isinstance(item, Check):
                checks.append(item)
                continue
            item.join(max(0.0, deadline - time.monotonic()))
            if item.result is not None:
                checks.append(item.result)
                continue
            with self._lock:
                self._hanging[part] = item
            checks.append(Check(part, TIMED_OUT, f"no answer within {self.timeout:g} s"))
        return checks


def readiness(
    database: Callable[[], object],
    blob_service: Callable[[], object],
    queue_service: Callable[[], object],
    timeout: float = 1.5,
) -> list[Check]:
    """Probe SQL, Blob and Queue storage once (tests and scripts; the app keeps one
    `Readiness` so a hanging part is not probed again while it hangs)."""
    return Readiness(storage_probes(database, blob_service, queue_service), timeout).check()


def storage_probes(
    database: Callable[[], object],
    blob_service: Callable[[], object],
    queue_service: Callable[[], object],
) -> dict[str, Callable[[], object]]:
    """The app's three parts, as probes. Taking factories means a setting that cannot
    even build a client is reported as that part failing, not as a 500."""

    def sql() -> None:
        database().scalar("SELECT 1 AS one")  # type: ignore[attr-defined]

    def blobs() -> None:
        next(iter(blob_service().list_containers(results_per_page=1)), None)  # type: ignore[attr-defined]

    def queues() -> None:
        next(iter(queue_service().list_queues(results_per_page=1)), None)  # type: ignore[attr-defined]

    return {"sql": sql, "blob_storage": blobs, "queue_storage": queues}


@cache
def app_readiness() -> Readiness:
    """The app's one prober, so a part that hangs is not probed again while it hangs."""
    from shared.db.app import database
    from shared.storage.clients import probe_blob_service, probe_queue_service

    return Readiness(storage_probes(database, probe_blob_service, probe_queue_service), 1.5)
