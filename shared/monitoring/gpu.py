"""NVIDIA GPU readings through NVML (`nvidia-ml-py`, module `pynvml`), when present.

Imported lazily and probed once per process: with no package or no driver (Azure
Functions has no GPU) there are no devices, one debug line says why, and nothing
raises. A device that stops answering is skipped for that reading only.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from shared.monitoring import MB

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    utilization_percent: float
    memory_mb: float
    memory_total_mb: float


_lock = threading.Lock()
_probed = False
_nvml: Any = None  # the pynvml module once nvmlInit succeeded


def nvml() -> Any:
    """The initialised pynvml module, or None when there is no package or no driver."""
    global _probed, _nvml
    with _lock:
        if _probed:
            return _nvml
        _probed = True
        try:
            import pynvml
        except ImportError:
            log.debug("GPU gauges off: nvidia-ml-py (pynvml) is not installed")
            return None
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            log.debug("GPU gauges off: NVML did not start (%s)", exc)
            return None
        _nvml = pynvml
        return _nvml


def read_gpus() -> list[GpuReading]:
    """One reading per NVIDIA device; an empty list without NVML."""
    lib = nvml()
    if lib is None:
        return []
    try:
        count = lib.nvmlDeviceGetCount()
    except Exception as exc:
        log.debug("GPU count unavailable: %s", exc)
        return []
    readings = []
    for index in range(count):
        try:
            handle = lib.nvmlDeviceGetHandleByIndex(index)
            name = lib.nvmlDeviceGetName(handle)
            util = lib.nvmlDeviceGetUtilizationRates(handle)
            memory = lib.nvmlDeviceGetMemoryInfo(handle)
        except Exception as exc:
            log.debug("GPU %d unreadable: %s", index, exc)
            continue
        readings.append(
            GpuReading(
                index=index,
                name=name.decode() if isinstance(name, bytes) else str(name),
                utilization_percent=float(util.gpu),
                memory_mb=memory.used / MB,
                memory_total_mb=memory.total / MB,
            )
        )
    return readings
