"""GET /api/metrics/resources on the real app through the local host."""

from __future__ import annotations

import psutil

from shared.monitoring.gpu import read_gpus
from shared.monitoring.shapes import ResourceUsage
from tests.support.host import Host


def test_resources_route_reports_the_host_process(app_host: Host) -> None:
    assert app_host.call("GET", "/metrics/resources", key=None).status == 401
    reply = app_host.call("GET", "/metrics/resources")
    assert reply.status == 200, reply.body
    body = ResourceUsage.model_validate(reply.json())  # the declared shape
    host = psutil.Process(app_host.process.pid)
    assert body.process.pid == host.pid  # the Functions host's own process
    rss_mb = host.memory_info().rss / 2**20
    assert abs(body.process.memory_mb - rss_mb) < max(32, 0.2 * rss_mb)
    assert 0 <= body.process.cpu_percent <= 100 * psutil.cpu_count()
    assert body.system.cpu_count == psutil.cpu_count()
    assert 0 <= body.system.cpu_percent <= 100
    assert body.process.memory_mb < body.system.memory_mb < body.system.memory_total_mb
    assert len(body.gpus) == len(read_gpus())  # none without an NVIDIA driver
    assert 0.15 <= body.window_seconds < 2
