"""One reading of this process's and this machine's CPU and memory, plus the GPUs.

Memory is in MB of 2**20 bytes (the unit Azure uses for instance memory sizes). In a
container psutil reads the host's /proc, so the machine figures are the VM's, not a
cgroup limit's; the process figures are exact.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from shared.monitoring import MB
from shared.monitoring.cpu import ProcessCpu, SystemCpu
from shared.monitoring.gpu import GpuReading, read_gpus


@dataclass(frozen=True)
class ProcessReading:
    pid: int
    cpu_percent: float
    memory_mb: float


@dataclass(frozen=True)
class SystemReading:
    cpu_count: int
    cpu_percent: float
    memory_mb: float
    memory_total_mb: float


@dataclass(frozen=True)
class ResourceReading:
    process: ProcessReading
    system: SystemReading
    gpus: list[GpuReading] = field(default_factory=list)
    window_seconds: float = 0.0


class ResourceReader:
    """Reads CPU (as a share of the time since this reader's previous reading), memory
    and GPUs. Each consumer keeps its own reader so their CPU windows stay apart."""

    def __init__(self) -> None:
        import psutil  # light; imported here so a missing package fails the caller only

        self._psutil = psutil
        self._process = psutil.Process(os.getpid())
        self.process_cpu = ProcessCpu(self._process)
        self.system_cpu = SystemCpu(psutil)

    def process_memory_mb(self) -> float:
        return self._process.memory_info().rss / MB

    def system_memory(self) -> Any:
        return self._psutil.virtual_memory()

    def system_memory_mb(self) -> float:
        memory = self.system_memory()
        return (memory.total - memory.available) / MB

    def read(self, window_seconds: float = 0.0) -> ResourceReading:
        memory = self.system_memory()
        return ResourceReading(
            process=ProcessReading(
                pid=self._process.pid,
                cpu_percent=self.process_cpu.percent(),
                memory_mb=self.process_memory_mb(),
            ),
            system=SystemReading(
                cpu_count=self._psutil.cpu_count() or 1,
                cpu_percent=self.system_cpu.percent(),
                memory_mb=(memory.total - memory.available) / MB,
                memory_total_mb=memory.total / MB,
            ),
            gpus=read_gpus(),
            window_seconds=window_seconds,
        )


def sample(window_seconds: float = 0.2) -> ResourceReading:
    """Current usage: CPU measured over a short window now (not since the process
    started), memory and GPUs as of the end of it."""
    reader = ResourceReader()
    reader.process_cpu.percent()
    reader.system_cpu.percent()
    start = time.monotonic()
    time.sleep(window_seconds)
    return reader.read(window_seconds=round(time.monotonic() - start, 3))
