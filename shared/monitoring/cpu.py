"""CPU percentages as deltas between two readings, each consumer with its own baseline.

psutil's own `cpu_percent(interval=None)` keeps one baseline per process (or per
thread), so two readers (the gauges at export time, the HTTP route) would reset each
other's window. Here every `ProcessCpu` / `SystemCpu` object remembers its last reading.
"""

from __future__ import annotations

import time
from typing import Any


class ProcessCpu:
    """CPU time used by one process per wall second, in percent of one core: 0 to
    100 × cores. The first reading averages over the process's whole life."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self._last_cpu = 0.0
        self._last_wall = process.create_time()

    def percent(self) -> float:
        times = self._process.cpu_times()
        cpu = times.user + times.system
        wall = time.time()
        elapsed = wall - self._last_wall
        used = cpu - self._last_cpu
        self._last_cpu, self._last_wall = cpu, wall
        return max(0.0, 100.0 * used / elapsed) if elapsed > 0 else 0.0


def _busy_and_total(times: Any) -> tuple[float, float]:
    """Busy and total CPU seconds of the machine. Like psutil: guest time is already
    counted in user time, and time waiting for I/O is idle."""
    fields = times._asdict()
    total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return total - idle, total


class SystemCpu:
    """Busy share of all the machine's cores, 0 to 100. The first reading averages
    since boot."""

    def __init__(self, psutil: Any) -> None:
        self._psutil = psutil
        self._last = (0.0, 0.0)

    def percent(self) -> float:
        busy, total = _busy_and_total(self._psutil.cpu_times())
        d_busy, d_total = busy - self._last[0], total - self._last[1]
        self._last = (busy, total)
        if d_total <= 0:
            return 0.0
        return min(100.0, max(0.0, 100.0 * d_busy / d_total))
