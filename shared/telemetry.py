"""The app's telemetry, through the OpenTelemetry API only.

The host owns the SDK: in Azure the Python worker calls `configure_azure_monitor()` when
`PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`, and the local host does the same
from the same settings. The app never configures an exporter (that doubles every
record); it only names its instruments and spans here, once, so the README, the KQL
queries in infra/monitoring and the tests all read the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

METER_NAME = "hartonomous"
TRACER_NAME = "hartonomous"


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: str  # histogram | counter | gauge
    unit: str
    description: str
    attributes: tuple[str, ...] = ()


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(
        "hartonomous.inference.duration",
        "histogram",
        "ms",
        "Time of one inference call, input decode to encoded output.",
        ("model", "version", "outcome"),
    ),
    Instrument(
        "hartonomous.inference.confidence",
        "histogram",
        "1",
        "Per-row confidence of classifier outputs (top probability).",
        ("model", "version"),
    ),
    Instrument(
        "hartonomous.inference.requests",
        "counter",
        "{request}",
        "Inference calls.",
        ("model", "outcome"),
    ),
    Instrument(
        "hartonomous.inference.failures",
        "counter",
        "{request}",
        "Inference calls that failed (any reason).",
        ("model",),
    ),
    Instrument(
        "hartonomous.vector.duration",
        "histogram",
        "ms",
        "Time of one vector operation request.",
        ("op",),
    ),
    Instrument(
        "hartonomous.search.duration",
        "histogram",
        "ms",
        "Time of one exact search.",
        ("metric", "rows"),
    ),
    Instrument(
        "hartonomous.job.duration",
        "histogram",
        "ms",
        "Time of one job attempt.",
        ("kind", "outcome"),
    ),
    Instrument(
        "hartonomous.jobs",
        "counter",
        "{job}",
        "Job attempts by kind and outcome.",
        ("kind", "outcome"),
    ),
    Instrument(
        "hartonomous.queue.poisoned",
        "counter",
        "{message}",
        "Messages given up after their last attempt (they go to the poison queue).",
        ("queue", "kind"),
    ),
    Instrument(
        "hartonomous.model.size",
        "histogram",
        "By",
        "Size of each model version when it is registered.",
        ("model",),
    ),
    Instrument(
        "hartonomous.process.cpu.utilization",
        "gauge",
        "%",
        "CPU used by this process, percent of one core times the cores.",
    ),
    Instrument(
        "hartonomous.system.cpu.utilization",
        "gauge",
        "%",
        "CPU used by the whole machine (or instance).",
    ),
    Instrument(
        "hartonomous.process.memory.usage",
        "gauge",
        "MB",
        "Resident memory of this process.",
    ),
    Instrument(
        "hartonomous.system.memory.usage",
        "gauge",
        "MB",
        "Memory in use on the machine (or instance).",
    ),
    Instrument(
        "hartonomous.gpu.utilization",
        "gauge",
        "%",
        "GPU utilisation, per device (only when an NVIDIA driver is present).",
        ("gpu",),
    ),
    Instrument(
        "hartonomous.gpu.memory.usage",
        "gauge",
        "MB",
        "GPU memory in use, per device (only when an NVIDIA driver is present).",
        ("gpu",),
    ),
)

BY_NAME = {i.name: i for i in INSTRUMENTS}
