"""The host's resident memory: sampled at start, after warm-up, at the end and at its
peak, and held against what its caches may hold."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import psutil

MiB = 1 << 20


def rss(pid: int) -> int:
    """Resident bytes of the process and any children it started."""
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


class PeakSampler:
    """A daemon thread that samples every `interval` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, rss(self.pid))
            except psutil.NoSuchProcess:
                return

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass(frozen=True)
class CacheBounds:
    """What the host may legitimately keep: search matrices, idle pooled buffers and
    loaded models (MAX_SESSIONS sessions of at most `model_bytes` each)."""

    search_cache: int
    buffer_pool: int
    sessions: int
    model_bytes: int

    @property
    def total(self) -> int:
        return self.search_cache + self.buffer_pool + self.sessions * self.model_bytes

    def describe(self) -> str:
        return (
            f"search cache {self.search_cache / MiB:.0f} MiB + buffer pool "
            f"{self.buffer_pool / MiB:.0f} MiB + {self.sessions} sessions x "
            f"{self.model_bytes / 1024:.0f} KiB"
        )


@dataclass(frozen=True)
class MemoryFigures:
    start: int  # host up, data seeded, nothing served yet
    warm: int  # after one request per route (caches filled)
    end: int  # after the HTTP load and the queue run
    peak: int
    bounds: CacheBounds

    @property
    def growth(self) -> int:
        return self.end - self.start

    @property
    def ok(self) -> bool:
        return self.growth <= self.bounds.total and self.peak - self.start <= self.bounds.total
