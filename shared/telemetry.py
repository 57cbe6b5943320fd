"""The app's telemetry, through the OpenTelemetry API only.

The host owns the SDK: in Azure the Python worker calls `configure_azure_monitor()` when
`PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`, and the local host does the same
from the same settings. The app never configures an exporter (that doubles every
record); it only names its instruments and spans here, once, so the README, the KQL
queries in infra/monitoring and the tests all read the same names.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace

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
        "Time of one exact search's scan (or of one batch's).",
        ("metric", "rows"),
    ),
    Instrument(
        "hartonomous.batch.size",
        "histogram",
        "{call}",
        "Calls run together in one dynamic batch.",
        ("batcher",),
    ),
    Instrument(
        "hartonomous.batch.queue_delay",
        "histogram",
        "ms",
        "Time the first call of a dynamic batch waited for others to join it.",
        ("batcher",),
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


# Span names and the attributes that make Application Insights show an ONNX session run
# as a dependency of type "ONNX" with the model as target: the exporter takes a CLIENT
# span's type from `az.namespace` and its target from `peer.service`
# (azure-monitor-opentelemetry-exporter, _convert_span_to_envelope).
SPAN_ONNX_RUN = "ONNX run"
ONNX_DEPENDENCY_TYPE = "ONNX"
SPAN_JOB = "job {kind}"  # the queue job's own span, inside the host's invocation span

log = logging.getLogger(__name__)

_instruments: dict[str, Any] = {}
_lock = threading.Lock()
_warned: set[str] = set()


_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    """The app's tracer, made once: a proxy that is a no-op until the host sets a
    provider and then delegates to it (asking the provider per span costs microseconds)."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(TRACER_NAME)
    return _tracer


# True in a context whose CLIENT spans are not wanted: a background thread's work on
# behalf of many requests at once (the inference log's batched inserts), which would
# otherwise show as operations of their own, with no request, in Application Insights.
_untraced: ContextVar[bool] = ContextVar("hartonomous_untraced", default=False)


@contextmanager
def untraced() -> Iterator[None]:
    """Within the block, ClientSpan starts no span (a thread's own context: set it in
    the thread that does the work)."""
    token = _untraced.set(True)
    try:
        yield
    finally:
        _untraced.reset(token)


class ClientSpan:
    """A CLIENT span around a call that makes no spans of its own (an ONNX run, one SQL
    statement): started and ended without becoming the current span, which saves the
    context switch on hot paths. An exception is recorded on it with error status."""

    __slots__ = ("_attributes", "_name", "span")

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self._name = name
        self._attributes = attributes

    def __enter__(self) -> trace.Span:
        if _untraced.get():
            self.span = trace.INVALID_SPAN
            return self.span
        self.span = tracer().start_span(
            self._name, kind=trace.SpanKind.CLIENT, attributes=self._attributes
        )
        return self.span

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        span = self.span
        if exc is not None and span.is_recording():
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{kind.__name__}: {exc}"))
        span.end()


def instrument(name: str) -> Any:
    """The instrument declared as `name`, created once per process.

    Created through the global meter, which proxies to whatever provider the host sets
    later, so creating them before the host configured the SDK is fine.
    """
    found = _instruments.get(name)
    if found is not None:
        return found
    with _lock:
        found = _instruments.get(name)
        if found is None:
            spec = BY_NAME[name]
            meter = metrics.get_meter(METER_NAME)
            create = {
                "histogram": meter.create_histogram,
                "counter": meter.create_counter,
                "gauge": meter.create_gauge,
            }[spec.kind]
            found = create(spec.name, unit=spec.unit, description=spec.description)
            _instruments[name] = found
    return found


def _warn_once(what: str) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning("telemetry: recording %s failed; carrying on without it", what, exc_info=True)


def record(name: str, value: float, attributes: Mapping[str, Any] | None = None) -> None:
    """Add to a counter or record in a histogram; never raises (telemetry must not fail
    a request: a broken SDK or exporter costs one warning)."""
    try:
        inst = _instruments.get(name) or instrument(name)
        if BY_NAME[name].kind == "counter":
            inst.add(value, attributes)
        else:
            inst.record(value, attributes)
    except Exception:
        _warn_once(name)


def rows_bucket(rows: int) -> int:
    """`rows` rounded up to a power of ten (0, 1, 10, 100, ...): a bounded attribute, so
    metric series stay few whatever the data size."""
    if rows <= 0:
        return 0
    return 10 ** math.ceil(math.log10(rows) - 1e-12)


def onnx_run(model: str, version: int | None = None) -> ClientSpan:
    """A dependency span around one ONNX session run (type ONNX, target the model);
    an exception is recorded on it with error status, then re-raised."""
    attributes: dict[str, Any] = {"az.namespace": ONNX_DEPENDENCY_TYPE, "peer.service": model}
    if version is not None:
        attributes["model.version"] = version
    return ClientSpan(SPAN_ONNX_RUN, attributes)


def record_error(exc: BaseException) -> None:
    """Record `exc` on the current span (the invocation's) with error status: for an
    error the app turns into a 5xx reply itself, so no exception reaches the host."""
    try:
        span = trace.get_current_span()
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
    except Exception:
        _warn_once("exception")


def inject_traceparent() -> str | None:
    """The current span's W3C `traceparent`, to carry across a hop (a queue message) that
    has no headers; None when no span is recording."""
    carrier: dict[str, str] = {}
    try:
        propagate.inject(carrier)
    except Exception:
        _warn_once("traceparent")
    return carrier.get("traceparent")


@contextmanager
def continued(traceparent: str | None) -> Iterator[None]:
    """Run the block in the trace `traceparent` names (as the parent of its spans);
    without one (a message from a tool that dropped it), in the current context."""
    if not traceparent:
        yield
        return
    token = None
    try:
        token = otel_context.attach(propagate.extract({"traceparent": traceparent}))
    except Exception:
        _warn_once("traceparent")
    try:
        yield
    finally:
        if token is not None:
            otel_context.detach(token)
