"""The real OpenTelemetry SDK with in-memory exporters, for the whole test session.

Global providers can be set once per process, so one session fixture sets them and
each test reads what it made (its own span names, unique model names, deltas).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devhost import azurite as azurite_mod
from tests.telemetry.otel import Otel

_OTEL: Otel | None = None


@pytest.fixture(scope="package")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite_mod.Azurite]:
    """An Azurite of this package's own. These tests count what a fresh host did,
    invocation by invocation; on the session's Azurite, a blob that another test's host
    left in `models` without a receipt (stopped before its next scan) fires in theirs
    too, and which one is left depends on what ran before on the same worker."""
    with azurite_mod.running(tmp_path_factory.mktemp("azurite-telemetry")) as instance:
        yield instance


@pytest.fixture(scope="session")
def otel_session() -> Otel:
    global _OTEL
    if _OTEL is None:
        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        trace.set_tracer_provider(provider)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _OTEL = Otel(spans, reader)
    return _OTEL


@pytest.fixture
def otel(otel_session: Otel) -> Iterator[Otel]:
    otel_session.spans.clear()
    yield otel_session
