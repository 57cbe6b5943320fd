"""Missing parts cost one log line, never an error: no NVML package, no NVIDIA driver,
no psutil. Each case runs in a fresh interpreter, as a worker process would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shared.settings import ROOT

GPU_PROBE = """
import json, logging, sys
if {block_nvml}:
    sys.modules["pynvml"] = None  # what `import pynvml` meets without the package
lines = []
class Keep(logging.Handler):
    def emit(self, record):
        lines.append((record.levelname, record.getMessage()))
logging.getLogger("shared").addHandler(Keep())
logging.getLogger("shared").setLevel(logging.DEBUG)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from shared.monitoring.gauges import register_gauges
from shared.monitoring.resources import sample
reader = InMemoryMetricReader()
register_gauges(MeterProvider(metric_readers=[reader]).get_meter("hartonomous"))
names = []
for _ in range(3):
    data = reader.get_metrics_data()
    names = [m.name for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics]
print(json.dumps({{"names": names, "gpus": len(sample(0.01).gpus), "log": lines}}))
"""


def _run(code: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("block_nvml", "reason"),
    [(True, "nvidia-ml-py (pynvml) is not installed"), (False, "NVML did not start")],
    ids=["no-package", "no-driver"],
)
def test_without_nvml_there_are_no_gpu_values_and_one_debug_line(
    block_nvml: bool, reason: str
) -> None:
    if not block_nvml:
        pytest.importorskip("pynvml")
    out = _run(GPU_PROBE.format(block_nvml=block_nvml))
    if not block_nvml and out["gpus"]:
        pytest.skip("this machine has an NVIDIA driver")
    assert "hartonomous.process.cpu.utilization" in out["names"]
    assert not [n for n in out["names"] if n.startswith("hartonomous.gpu.")]
    assert out["gpus"] == 0
    gpu_lines = [line for line in out["log"] if "GPU" in line[1]]
    assert len(gpu_lines) == 1, out["log"]  # three collections and a sample: one line
    assert gpu_lines[0][0] == "DEBUG" and reason in gpu_lines[0][1]


def test_function_app_imports_and_serves_without_psutil() -> None:
    code = """
import json, logging, sys
sys.modules["psutil"] = None
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
import function_app
from shared.monitoring.gauges import register_once
names = [f.get_function_name() for f in function_app.app.get_functions()]
print(json.dumps({"registered": register_once(), "has_route": "metrics_resources" in names}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"registered": False, "has_route": True}
    assert "resource gauges off" in done.stderr


def test_gauges_registered_at_import_report_once_the_host_sets_its_provider() -> None:
    """function_app.py registers on the API's proxy meter; the worker (or the local host)
    sets the real provider later, and the gauges must then report."""
    code = """
import json
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
import function_app  # registers on the API's proxy meter, before any provider is set
from shared.monitoring.gauges import register_once
again = register_once()
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))  # as the host does later
data = reader.get_metrics_data()
points = {}
for r in data.resource_metrics:
    for s in r.scope_metrics:
        for m in s.metrics:
            points[m.name] = points.get(m.name, 0) + len(m.data.data_points)
print(json.dumps({"again": again, "points": points}))
"""
    out = _run(code)
    assert out["again"] is True
    assert out["points"]["hartonomous.process.memory.usage"] == 1
    assert out["points"]["hartonomous.system.cpu.utilization"] == 1
