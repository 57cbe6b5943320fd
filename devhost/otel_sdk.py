"""The host owns the OpenTelemetry SDK, as the Python worker does in Azure.

The app (shared/) uses only the OpenTelemetry API; whoever runs it configures the SDK,
once. In Azure that is the Python worker, when `PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`
is true (with `"telemetryMode": "OpenTelemetry"` in host.json). Here it is this module,
from the same settings, checked in this order:

- `APPLICATIONINSIGHTS_CONNECTION_STRING` and `PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`:
  `configure_azure_monitor()` (azure-monitor-opentelemetry), as the worker calls it.
- `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP over HTTP (traces and metrics), any collector.
- `OTEL_TRACES_EXPORTER=console`: spans and metrics printed to stdout.
- otherwise nothing: the API stays a no-op.

Each invocation runs in one span (`invocation`): SERVER for HTTP, continuing the
request's `traceparent` header, CONSUMER for queue and blob triggers. A bad connection
string or an exporter that cannot reach its endpoint costs one warning, never a failure.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

log = logging.getLogger("devhost.otel_sdk")

ENABLE_SETTING = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
OTLP_SETTING = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACER_NAME = "devhost"

# Loggers whose repeated warnings (an endpoint that does not answer) are shown once.
_EXPORTER_LOGGERS = (
    "azure.monitor.opentelemetry",
    "opentelemetry.exporter",
    "opentelemetry.sdk",
)


@dataclass
class Telemetry:
    """What was configured, and how to flush it at shutdown."""

    mode: str = "off"  # azure_monitor | otlp | console | off
    providers: list[Any] = field(default_factory=list)

    def shutdown(self) -> None:
        """Flush and stop the providers (spans and metrics still batched are sent)."""
        _detach_log_handlers()  # no log record may reach a logger provider shut down
        for provider in self.providers:
            try:
                provider.shutdown()
            except Exception as exc:  # telemetry never fails the host
                log.warning("telemetry: shutting down %s failed: %s", type(provider).__name__, exc)


def _detach_log_handlers() -> None:
    """Take the OpenTelemetry logging handler (the distro puts one on the root logger)
    off, flushing it first."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler).__module__.startswith("opentelemetry"):
            root.removeHandler(handler)
            try:
                handler.flush()
            except Exception as exc:
                log.warning("telemetry: flushing logs failed: %s", exc)


class _OnceFilter(logging.Filter):
    """Lets one WARNING-or-worse record through per logger, then only DEBUG-level ones:
    an unreachable endpoint says so once instead of once per export."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = record.name.split(".")[0]
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def _quiet_exporters() -> None:
    once = _OnceFilter()
    for name in _EXPORTER_LOGGERS:
        logging.getLogger(name).addFilter(once)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_ExporterOnce(once))


class _ExporterOnce(logging.Filter):
    """The once-filter applied at the root handler to records of the exporter loggers
    (a logger's own filters do not see records of its child loggers)."""

    def __init__(self, once: _OnceFilter) -> None:
        super().__init__()
        self._once = once

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_EXPORTER_LOGGERS):
            return self._once.filter(record)
        return True


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def configure(env: Mapping[str, str] | None = None) -> Telemetry:
    """Configure the SDK once, from the settings (see the module docstring)."""
    env = os.environ if env is None else env
    connection = (env.get(CONNECTION_SETTING) or "").strip()
    try:
        if connection and _truthy(env.get(ENABLE_SETTING)):
            return _azure_monitor()
        if (env.get(OTLP_SETTING) or "").strip():
            return _otlp()
        if (env.get("OTEL_TRACES_EXPORTER") or "").strip().lower() == "console":
            return _console()
    except Exception as exc:
        log.warning("telemetry is off: configuring it failed: %s", exc)
        return Telemetry()
    if connection:
        log.info("%s is set, %s is not true: telemetry off", CONNECTION_SETTING, ENABLE_SETTING)
    return Telemetry()


def _azure_monitor() -> Telemetry:
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import metrics
    from opentelemetry._logs import get_logger_provider

    _quiet_exporters()
    configure_azure_monitor()
    log.info("Telemetry: Azure Monitor (Application Insights)")
    providers = [trace.get_tracer_provider(), metrics.get_meter_provider(), get_logger_provider()]
    return Telemetry("azure_monitor", [p for p in providers if hasattr(p, "shutdown")])


def _sdk_providers(span_exporter: Any, metric_exporter: Any) -> list[Any]:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME") or "hartonomous-functions"}
    )
    tracer_provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(metric_exporter)]
    )
    metrics.set_meter_provider(meter_provider)
    _trace_azure_sdk()
    return [tracer_provider, meter_provider]


def _trace_azure_sdk() -> None:
    """Blob and Queue calls as spans: azure-core's OpenTelemetry plugin (the distro
    turns it on itself for Azure Monitor)."""
    try:
        from azure.core.settings import settings
        from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan

        settings.tracing_implementation = OpenTelemetrySpan
    except ImportError as exc:
        log.warning("telemetry: Azure SDK calls are not traced: %s", exc)


def _otlp() -> Telemetry:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    _quiet_exporters()
    providers = _sdk_providers(OTLPSpanExporter(), OTLPMetricExporter())
    log.info("Telemetry: OTLP to %s", os.environ.get(OTLP_SETTING))
    return Telemetry("otlp", providers)


def _console() -> Telemetry:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    providers = _sdk_providers(ConsoleSpanExporter(), ConsoleMetricExporter())
    log.info("Telemetry: console")
    return Telemetry("console", providers)


# -- one span per invocation --------------------------------------------------------------


@dataclass(frozen=True)
class SpanStart:
    """How a trigger wants its invocation's span: kind, incoming context, attributes."""

    kind: SpanKind
    attributes: dict[str, Any]
    headers: Mapping[str, str] | None = None  # carries `traceparent` (HTTP)
    name: str | None = None


def http_span(method: str, url: str, route: str, headers: Mapping[str, str]) -> SpanStart:
    """A SERVER span for an HTTP request, continuing its `traceparent` header."""
    attributes = {
        "faas.trigger": "http",
        "http.request.method": method,
        "url.full": url,
        "http.route": route,
    }
    return SpanStart(SpanKind.SERVER, attributes, headers, f"{method} {route}")


def queue_span(queue: str, message_id: str) -> SpanStart:
    """A CONSUMER span for a queue message (queues carry no trace context)."""
    return SpanStart(
        SpanKind.CONSUMER,
        {
            "faas.trigger": "pubsub",
            "messaging.system": "azure_queue",
            "messaging.destination": queue,
            "messaging.message.id": message_id,
        },
    )


def blob_span(container: str, blob: str) -> SpanStart:
    """A CONSUMER span for a new or changed blob."""
    return SpanStart(
        SpanKind.CONSUMER,
        {
            "faas.trigger": "datasource",
            "faas.document.collection": container,
            "faas.document.name": blob,
        },
    )


_cached: list[Any] = []


def _tracer() -> Any:
    """The host's tracer, made once (a proxy until a provider is set)."""
    if not _cached:
        _cached.append(trace.get_tracer(TRACER_NAME))
    return _cached[0]


@contextmanager
def invocation(function: str, invocation_id: str, start: SpanStart | None) -> Iterator[Any]:
    """Run the block (one invocation) in its span, on the calling thread: the function's
    own spans become its children. A no-op span when no SDK is configured."""
    start = start or SpanStart(SpanKind.INTERNAL, {})
    parent = None
    if start.headers:
        try:
            parent = propagate.extract(start.headers)
        except Exception:  # a malformed header starts a new trace
            parent = None
    attributes = {**start.attributes, "faas.name": function, "faas.invocation_id": invocation_id}
    token = otel_context.attach(parent) if parent is not None else None
    try:
        with _tracer().start_as_current_span(
            start.name or function,
            kind=start.kind,
            attributes=attributes,
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            yield span
    finally:
        if token is not None:
            otel_context.detach(token)


def set_result(span: Any, result: Any) -> None:
    """An HTTP function's status code on its span (5xx marks the span failed)."""
    status = getattr(result, "status_code", None)
    if status is None or not span.is_recording():
        return
    span.set_attribute("http.response.status_code", int(status))
    if int(status) >= 500:
        span.set_status(Status(StatusCode.ERROR))


def set_failed(span: Any) -> None:
    """An HTTP invocation that raised answers 500."""
    if span.is_recording() and span.attributes.get("faas.trigger") == "http":
        span.set_attribute("http.response.status_code", 500)
