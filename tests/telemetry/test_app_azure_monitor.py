"""End to end with the real Azure Monitor exporter: the local host configures
`configure_azure_monitor()` from the worker's settings and posts to a loopback ingestion
endpoint; the test reads the envelopes Application Insights would receive."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest

from shared.telemetry import INSTRUMENTS, ONNX_DEPENDENCY_TYPE
from tests.support.host import start_app, stop_host, upload_blob, wait_for_job, wait_for_model
from tests.support.models import iris, write_classifier
from tests.telemetry.ingestion import decode_track_body, ingestion_server

pytestmark = pytest.mark.e2e

TELEMETRY_ENV = {
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
    "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
    "OTEL_TRACES_SAMPLER_ARG": "1.0",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_METRIC_EXPORT_INTERVAL": "1000",
}


def test_track_bodies_are_read_as_array_or_lines_gzip_or_not() -> None:
    import gzip
    import json

    items = [{"name": "a"}, {"name": "b"}]
    lines = "\n".join(json.dumps(i) for i in items).encode()
    assert decode_track_body(json.dumps(items).encode()) == items
    assert decode_track_body(gzip.compress(lines), "gzip") == items
    assert decode_track_body(gzip.compress(json.dumps(items).encode())) == items


def test_application_insights_receives_requests_dependencies_metrics_and_one_trace(
    azurite, tmp_path: Path
) -> None:
    with ingestion_server() as (connection, sink):
        env = {**TELEMETRY_ENV, "APPLICATIONINSIGHTS_CONNECTION_STRING": connection}
        (tmp_path / "host").mkdir()
        app = start_app(tmp_path / "host", azurite.connection_string, env)
        try:
            # a model uploaded straight to the container: blob trigger -> enqueue -> job
            path = write_classifier(tmp_path, "tele-iris.onnx")
            upload_blob(app, "tele-iris.onnx", path.read_bytes())
            model = wait_for_model(app, "tele-iris")
            assert model["status"] == "ready", model
            wait_for_job(app, f"ingest-{model['id']}")

            x = iris()[0][:3]
            request = {"inputs": [{"name": "X", "shape": [3, 4], "datatype": "FP32"}]}
            request["inputs"][0]["data"] = x.tolist()
            meta = app.call("GET", "/v2/models/tele-iris").json()
            request["inputs"][0]["name"] = meta["inputs"][0]["name"]
            traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            reply = app.call(
                "POST",
                "/v2/models/tele-iris/infer",
                request,
                headers={"traceparent": traceparent},
            )
            assert reply.status == 200, reply.body
            assert app.call("POST", "/vectors/dot", {"a": [1, 2], "b": [3, 4]}).status == 200
            time.sleep(1.5)  # one metric export interval
        finally:
            stop_host(app)  # SIGTERM flushes the providers
        log = app.log()

    assert sink.posts > 0, log[-3000:]
    requests = sink.data("RequestData")
    dependencies = sink.data("RemoteDependencyData")

    # one request per invocation (HTTP, blob, queue), none doubled, none missing
    invocations = re.findall(r"Executed 'Functions\.[^']+' \(\w+, Id=([0-9a-f-]+)", log)
    per_invocation = Counter(r["properties"].get("faas.invocation_id") for r in requests)
    assert set(per_invocation) == set(invocations) and set(per_invocation.values()) == {1}
    http = [r for r in requests if r["properties"].get("faas.trigger") == "http"]
    assert http and all(r.get("url") for r in http)
    print("ingestion bodies:", dict(sink.formats))
    infer = [r for r in http if r["name"] == "POST /api/v2/models/{name}/infer"]
    assert len(infer) == 1 and infer[0]["responseCode"] == "200"
    # the incoming traceparent is continued
    assert infer[0]["_tags"]["ai.operation.id"] == "0af7651916cd43dd8448eb211c80319c"
    assert infer[0]["_tags"]["ai.operation.parentId"] == "b7ad6b7169203331"

    # the ONNX run is a dependency of type ONNX with the model as target, in that request
    onnx = [d for d in dependencies if d.get("type") == ONNX_DEPENDENCY_TYPE]
    served = [
        d for d in onnx if d["_tags"]["ai.operation.id"] == infer[0]["_tags"]["ai.operation.id"]
    ]
    assert len(served) == 1 and served[0]["target"] == "tele-iris", onnx
    assert served[0]["_tags"]["ai.operation.parentId"] == infer[0]["id"]
    # SQL calls are dependencies too
    assert any(d.get("type") == "SQL" for d in dependencies)

    # custom metrics, by their declared names
    names = sink.metric_names()
    for expected in (
        "hartonomous.inference.duration",
        "hartonomous.inference.requests",
        "hartonomous.inference.confidence",
        "hartonomous.vector.duration",
        "hartonomous.job.duration",
        "hartonomous.jobs",
        "hartonomous.model.size",
    ):
        assert expected in names, sorted(names)
    assert names & {i.name for i in INSTRUMENTS} <= {i.name for i in INSTRUMENTS}

    # upload -> blob trigger -> enqueue -> job: one operation id
    blob = [r for r in requests if r["name"] == "register_model_blob"]
    assert len(blob) == 1, [r["name"] for r in requests]
    operation = blob[0]["_tags"]["ai.operation.id"]
    job = [d for d in dependencies if d["name"] == "job model"]
    assert job and all(d["_tags"]["ai.operation.id"] == operation for d in job)
    # the job continues the trace the enqueue carried: a child of the blob invocation
    assert job[0]["_tags"]["ai.operation.parentId"] == blob[0]["id"]
    in_trace = {d["name"] for d in dependencies if d["_tags"]["ai.operation.id"] == operation}
    # Blob and Queue calls, traced by azure-core's OpenTelemetry plugin, and SQL
    assert {"QueueClient.send_message", "BlobClient.download_blob", "INSERT models"} <= in_trace
    sends = [
        d
        for d in dependencies
        if d["_tags"]["ai.operation.id"] == operation
        and d["name"] == "POST /devstoreaccount1/ingestion-jobs/messages"
    ]
    assert len(sends) == 1  # one enqueue, one HTTP dependency: not doubled by urllib3's
