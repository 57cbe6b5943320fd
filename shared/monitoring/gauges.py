"""The resource gauges, through the OpenTelemetry API only (the host owns the SDK).

Observable gauges are read when the host's metric reader collects (every export
interval), so the CPU figures are averages over that interval. Registration happens
once per process from function_app.py and never raises: without psutil there are no
process or machine gauges, without NVML no GPU values, and one log line says so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from shared.telemetry import BY_NAME, METER_NAME

log = logging.getLogger(__name__)

PROCESS_CPU = "hartonomous.process.cpu.utilization"
SYSTEM_CPU = "hartonomous.system.cpu.utilization"
PROCESS_MEMORY = "hartonomous.process.memory.usage"
SYSTEM_MEMORY = "hartonomous.system.memory.usage"
GPU_UTILIZATION = "hartonomous.gpu.utilization"
GPU_MEMORY = "hartonomous.gpu.memory.usage"


def _guarded(name: str, read: Callable[[], Iterable[Any]]) -> Callable[[Any], list[Any]]:
    """A callback that logs its first failure and then yields nothing, so a broken
    reading costs one warning, not a stack trace at every export."""
    failed = False

    def callback(options: Any) -> list[Any]:
        nonlocal failed
        try:
            return list(read())
        except Exception:
            if not failed:
                failed = True
                log.warning("gauge %s could not be read", name, exc_info=True)
            return []

    return callback


def register_gauges(meter: Any) -> list[Any]:
    """Create the six gauges on `meter` and return them. Tests pass a meter from their
    own MeterProvider; the app goes through `register_once`."""
    from opentelemetry.metrics import Observation

    from shared.monitoring.gpu import read_gpus
    from shared.monitoring.resources import ResourceReader

    reader = ResourceReader()

    def gpus(value: Callable[[Any], float]) -> Iterable[Any]:
        return [Observation(value(g), {"gpu": str(g.index)}) for g in read_gpus()]

    reads: dict[str, Callable[[], Iterable[Any]]] = {
        PROCESS_CPU: lambda: [Observation(reader.process_cpu.percent())],
        SYSTEM_CPU: lambda: [Observation(reader.system_cpu.percent())],
        PROCESS_MEMORY: lambda: [Observation(reader.process_memory_mb())],
        SYSTEM_MEMORY: lambda: [Observation(reader.system_memory_mb())],
        GPU_UTILIZATION: lambda: gpus(lambda g: g.utilization_percent),
        GPU_MEMORY: lambda: gpus(lambda g: g.memory_mb),
    }
    created = []
    for name, read in reads.items():
        declared = BY_NAME[name]
        created.append(
            meter.create_observable_gauge(
                name,
                callbacks=[_guarded(name, read)],
                unit=declared.unit,
                description=declared.description,
            )
        )
    return created


_lock = threading.Lock()
_registered = False


def register_once() -> bool:
    """Register the gauges on the global meter, once per process. Returns whether they
    are registered; logs (never raises) when they cannot be."""
    global _registered
    with _lock:
        if _registered:
            return True
        try:
            from opentelemetry import metrics

            register_gauges(metrics.get_meter(METER_NAME))
        except Exception as exc:
            log.warning("resource gauges off: %s", exc)
            return False
        _registered = True
        return True
