"""The local host as the SDK's one owner: which exporter the settings choose, OTLP to a
loopback collector, and telemetry that cannot be sent never failing a request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devhost.azurite import free_port
from devhost.otel_sdk import configure
from tests.support.host import start_app, stop_host

pytestmark = pytest.mark.e2e

QUIET = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
    "OTEL_TRACES_SAMPLER_ARG": "1.0",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "OTEL_METRIC_EXPORT_INTERVAL": "300",
}


def test_without_settings_the_host_configures_nothing() -> None:
    assert configure({}).mode == "off"
    # a connection string alone is not enough: the worker needs the enable flag too
    assert (
        configure({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}).mode == "off"
    )


@pytest.mark.parametrize(
    ("case", "connection", "warning"),
    [
        (
            "unreachable",
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            "IngestionEndpoint=http://127.0.0.1:{port}/;LiveEndpoint=http://127.0.0.1:{port}/",
            "Connection refused",
        ),
        ("malformed", "not-a-connection-string", "telemetry is off"),
    ],
)
def test_telemetry_that_cannot_be_sent_costs_one_warning_never_a_request(
    azurite, tmp_path: Path, case: str, connection: str, warning: str
) -> None:
    env = {
        **QUIET,
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": connection.format(port=free_port()),
    }
    app = start_app(tmp_path, azurite.connection_string, env)
    try:
        statuses = [
            app.call("POST", "/vectors/dot", {"a": [1, 2], "b": [3, 4]}).status for _ in range(6)
        ]
        time.sleep(1.2)  # several export attempts (spans every 0.1 s, metrics every 0.3 s)
    finally:
        stop_host(app)
    assert statuses == [200] * 6
    assert app.process.returncode == 0
    assert app.log().count(warning) == 1, app.log()[-2000:]


@contextmanager
def otlp_collector() -> Iterator[tuple[str, dict[str, list[bytes]]]]:
    """A loopback OTLP/HTTP receiver: the protobuf bodies posted, by path."""
    received: dict[str, list[bytes]] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                received.setdefault(self.path, []).append(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_otlp_endpoint_receives_server_spans_and_the_app_metrics(azurite, tmp_path: Path) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    with otlp_collector() as (endpoint, received):
        env = {**QUIET, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": ""}
        app = start_app(tmp_path, azurite.connection_string, env)
        try:
            reply = app.call(
                "POST",
                "/vectors/cosine",
                {"a": [1, 0], "b": [0, 1]},
                headers={"traceparent": "00-1234567890abcdef1234567890abcdef-1234567890abcdef-01"},
            )
            assert reply.status == 200
        finally:
            stop_host(app)  # flushes
        spans = []
        for body in received.get("/v1/traces", []):
            request = ExportTraceServiceRequest.FromString(body)
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    spans += list(ss.spans)
        metric_names = set()
        for body in received.get("/v1/metrics", []):
            request = ExportMetricsServiceRequest.FromString(body)
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    metric_names.update(m.name for m in sm.metrics)

    server = [s for s in spans if s.name == "POST /api/vectors/{op}"]
    assert len(server) == 1, [s.name for s in spans]
    assert server[0].kind == 2  # SPAN_KIND_SERVER
    assert server[0].trace_id.hex() == "1234567890abcdef1234567890abcdef"
    assert server[0].parent_span_id.hex() == "1234567890abcdef"
    assert "hartonomous.vector.duration" in metric_names
