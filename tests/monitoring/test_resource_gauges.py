"""The resource gauges, read through the real OpenTelemetry SDK (InMemoryMetricReader)
on a MeterProvider local to these tests: the global provider belongs to the telemetry
tests and can be set once per process."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psutil
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.monitoring import gauges
from shared.monitoring.gpu import read_gpus
from shared.telemetry import BY_NAME, METER_NAME

MB = 1024 * 1024
GAUGES = (
    gauges.PROCESS_CPU,
    gauges.SYSTEM_CPU,
    gauges.PROCESS_MEMORY,
    gauges.SYSTEM_MEMORY,
    gauges.GPU_UTILIZATION,
    gauges.GPU_MEMORY,
)


class Reader:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        gauges.register_gauges(self.provider.get_meter(METER_NAME))

    def collect(self) -> dict[str, tuple[str, list]]:
        """name -> (unit, data points) of one collection."""
        out: dict[str, tuple[str, list]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out[metric.name] = (metric.unit, list(metric.data.data_points))
        return out

    def value(self, name: str) -> float:
        _, points = self.collect()[name]
        assert len(points) == 1
        return points[0].value


@pytest.fixture
def reader() -> Iterator[Reader]:
    r = Reader()
    try:
        yield r
    finally:
        r.provider.shutdown()


def test_gauges_carry_the_declared_names_units_and_attributes(reader: Reader) -> None:
    collected = reader.collect()
    for name in GAUGES:
        assert BY_NAME[name].kind == "gauge"
    for name in GAUGES[:4]:
        unit, points = collected[name]
        assert unit == BY_NAME[name].unit
        assert len(points) == 1 and dict(points[0].attributes or {}) == {}
    devices = read_gpus()
    for name in GAUGES[4:]:
        if not devices:  # no NVIDIA driver here: the gauge exists but yields no values
            assert name not in collected
            continue
        unit, points = collected[name]
        assert unit == BY_NAME[name].unit
        assert sorted(p.attributes["gpu"] for p in points) == [str(d.index) for d in devices]


def test_process_memory_is_this_process_resident_memory(reader: Reader) -> None:
    import mmap

    # An anonymous mapping, written: RSS grows by 64 MB, and closing it gives the pages
    # back to the system for sure (malloc may keep a freed bytes object's pages).
    ballast = mmap.mmap(-1, 64 * MB)
    ballast.write(b"\x01" * (64 * MB))
    before = psutil.Process(os.getpid()).memory_info().rss / MB
    gauge = reader.value(gauges.PROCESS_MEMORY)
    after = psutil.Process(os.getpid()).memory_info().rss / MB
    assert min(before, after) - 5 <= gauge <= max(before, after) + 5
    ballast.close()
    assert reader.value(gauges.PROCESS_MEMORY) < gauge - 32


def test_system_memory_is_what_the_machine_uses(reader: Reader) -> None:
    gauge = reader.value(gauges.SYSTEM_MEMORY)
    vm = psutil.virtual_memory()
    used = (vm.total - vm.available) / MB
    assert abs(gauge - used) < max(256, 0.1 * used)
    assert reader.value(gauges.PROCESS_MEMORY) < gauge < vm.total / MB


def test_cpu_gauges_stay_in_range_and_a_busy_loop_raises_process_cpu(reader: Reader) -> None:
    reader.collect()  # baseline: the next figures cover only what follows
    time.sleep(0.5)
    idle = reader.collect()
    idle_cpu = idle[gauges.PROCESS_CPU][1][0].value
    system_cpu = idle[gauges.SYSTEM_CPU][1][0].value
    assert 0 <= idle_cpu <= 100 * psutil.cpu_count()
    assert 0 <= system_cpu <= 100

    wall0, cpu0 = time.monotonic(), time.process_time()
    while time.process_time() - cpu0 < 0.5:  # 0.5 s of CPU, however the cores are shared
        sum(i * i for i in range(10_000))
    busy = reader.collect()
    expected = 100 * (time.process_time() - cpu0) / (time.monotonic() - wall0)
    busy_cpu = busy[gauges.PROCESS_CPU][1][0].value
    # the gauge is what the test itself measured, however busy the shared cores are
    assert busy_cpu > idle_cpu
    assert 0.7 * expected <= busy_cpu <= min(1.3 * expected + 10, 100 * psutil.cpu_count())
    assert 0 <= busy[gauges.SYSTEM_CPU][1][0].value <= 100
