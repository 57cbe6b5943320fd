"""What the app records, read back through the real SDK with in-memory exporters:
names, units, attributes, parent/child links, the queue hop through Azurite."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import azure.functions as func
import numpy as np
import pytest
from azure.storage.queue import QueueServiceClient
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from shared import telemetry
from shared.db.connection import Database, open_database
from shared.embeddings.repository import EmbeddingRepository
from shared.embeddings.service import EmbeddingStore, Limits
from shared.inference.protocol.types import InferRequest
from shared.inference.service import InferenceService
from shared.jobs.messages import parse_message
from shared.jobs.payloads import PayloadStore
from shared.jobs.repository import JobRepository
from shared.jobs.runner import JobRunner
from shared.jobs.submit import JobQueue, JobSubmitter
from shared.registry.errors import InferenceInputError
from shared.search.cache import IndexCache
from shared.search.repository import SetRepository
from shared.search.service import SearchService
from shared.storage.blob_store import BlobModelStore
from tests.support.inference import Harness
from tests.support.models import iris, write_classifier
from tests.telemetry.otel import Otel


def _sum(otel: Otel, name: str, **attributes) -> float:
    """Sum (counter) or count (histogram) of the points whose attributes include these."""
    total = 0.0
    for attrs, point, _ in otel.points(name):
        if all(attrs.get(k) == v for k, v in attributes.items()):
            total += getattr(point, "value", None) or getattr(point, "count", 0)
    return total


# -- instruments --------------------------------------------------------------------------


def test_every_declared_instrument_is_created_once_with_its_name_and_unit(otel: Otel) -> None:
    for spec in telemetry.INSTRUMENTS:
        assert telemetry.instrument(spec.name) is telemetry.instrument(spec.name)
    tag = uuid.uuid4().hex
    for spec in telemetry.INSTRUMENTS:
        if spec.kind in ("counter", "histogram"):
            telemetry.record(spec.name, 1, {a: tag for a in spec.attributes})
    for spec in telemetry.INSTRUMENTS:
        if spec.kind not in ("counter", "histogram"):
            continue
        points = [p for p in otel.points(spec.name) if tag in p[0].values() or not spec.attributes]
        assert points, spec.name
        attrs, _, unit = points[-1]
        assert unit == spec.unit
        assert set(attrs) <= set(spec.attributes)


def test_recording_never_raises_and_warns_once(
    otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    # the SDK raises TypeError for a value that is not a number: a request must not
    with caplog.at_level("WARNING", logger="shared.telemetry"):
        for _ in range(3):
            telemetry.record("hartonomous.model.size", "big", {"model": "x"})  # type: ignore[arg-type]
    warnings = [r for r in caplog.records if r.name == "shared.telemetry"]
    assert len(warnings) == 1 and "hartonomous.model.size" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("rows", "bucket"), [(0, 0), (1, 1), (7, 10), (10, 10), (11, 100), (100_001, 1_000_000)]
)
def test_rows_is_a_power_of_ten_bucket(rows: int, bucket: int) -> None:
    assert telemetry.rows_bucket(rows) == bucket


# -- inference ----------------------------------------------------------------------------


@pytest.fixture
def inference(harness: Harness, tmp_path: Path) -> tuple[InferenceService, str]:
    """A ready classifier under a name of its own: the session's meters are shared."""
    name = f"iris-{uuid.uuid4().hex[:8]}"
    harness.register(name, write_classifier(tmp_path))
    return harness.service, name


def _request(x: np.ndarray) -> InferRequest:
    return InferRequest(
        inputs=[{"name": "X", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}]
    )


def test_inference_records_an_onnx_dependency_span_and_its_metrics(otel: Otel, inference) -> None:
    service, name = inference
    otel.spans.clear()  # the fixture's own SQL
    x = iris()[0][:4]
    with trace.get_tracer("test").start_as_current_span("request") as parent:
        response = service.infer(name, None, _request(x))

    (run,) = otel.finished(telemetry.SPAN_ONNX_RUN)
    assert run.kind is SpanKind.CLIENT
    assert run.attributes["az.namespace"] == "ONNX" and run.attributes["peer.service"] == name
    assert run.attributes["model.version"] == 1
    assert run.parent.span_id == parent.get_span_context().span_id
    assert run.context.trace_id == parent.get_span_context().trace_id
    # the SQL lookups are children of the request too, named by verb and table
    sql = [s for s in otel.finished() if s.attributes.get("db.system") == "sqlite"]
    assert any(s.name == "SELECT models" for s in sql)
    assert all(s.context.trace_id == parent.get_span_context().trace_id for s in sql)

    ok = {"model": name, "version": 1, "outcome": "succeeded"}
    assert _sum(otel, "hartonomous.inference.duration", **ok) == 1
    assert _sum(otel, "hartonomous.inference.requests", model=name, outcome="succeeded") == 1
    assert _sum(otel, "hartonomous.inference.failures", model=name) == 0
    # one confidence per row, each the row's top probability
    confidence = response.parameters["confidence"]
    points = [
        p for a, p, _ in otel.points("hartonomous.inference.confidence") if a["model"] == name
    ]
    assert points[0].count == len(confidence) == 4
    assert points[0].sum == pytest.approx(sum(confidence), rel=1e-6)


def test_a_failed_run_is_an_error_span_and_counts_as_a_failure(otel: Otel, inference) -> None:
    service, name = inference
    service.infer(name, None, _request(iris()[0][:1]))  # load and warm first
    otel.spans.clear()
    bad = InferRequest(
        inputs=[{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]
    )
    with pytest.raises(InferenceInputError):
        service.infer(name, None, bad)
    assert _sum(otel, "hartonomous.inference.failures", model=name) == 1
    assert _sum(otel, "hartonomous.inference.requests", model=name, outcome="failed") == 1
    assert _sum(otel, "hartonomous.inference.duration", model=name, outcome="failed") == 1


def test_an_exception_inside_the_onnx_span_is_recorded_with_error_status(otel: Otel) -> None:
    with pytest.raises(RuntimeError), telemetry.onnx_run("m"):
        raise RuntimeError("session exploded")
    (span,) = otel.finished(telemetry.SPAN_ONNX_RUN)
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    assert span.events[0].attributes["exception.message"] == "session exploded"


# -- SQL ----------------------------------------------------------------------------------


def test_sql_spans_carry_verb_table_and_system_never_values(otel: Otel, tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'sql.db'}")
    try:
        db.execute("CREATE TABLE secrets (k TEXT, v TEXT)")
        db.execute("INSERT INTO secrets (k, v) VALUES (?, ?)", ("name", "hunter2-value"))
        assert db.query("SELECT v FROM secrets WHERE k = ?", ("name",))[0]["v"] == "hunter2-value"
    finally:
        db.close()
    spans = {s.name: s for s in otel.finished() if s.attributes.get("db.system") == "sqlite"}
    assert {"CREATE secrets", "INSERT secrets", "SELECT secrets"} <= set(spans)
    insert = spans["INSERT secrets"]
    assert insert.kind is SpanKind.CLIENT
    assert insert.attributes["db.operation"] == "INSERT"
    assert insert.attributes["db.sql.table"] == "secrets"
    assert insert.attributes["db.name"] == "sql.db"
    every_value = [str(v) for s in spans.values() for v in s.attributes.values()]
    assert not any("hunter2" in v for v in every_value)


# -- vectors and search -------------------------------------------------------------------


def test_vector_requests_record_their_duration_by_op(otel: Otel) -> None:
    from shared.vectors.routes import vector_op

    before = _sum(otel, "hartonomous.vector.duration", op="cosine")
    req = func.HttpRequest(
        "POST",
        "http://localhost/api/vectors/cosine",
        body=json.dumps({"a": [1, 0], "b": [[1, 0], [0, 1]]}).encode(),
        route_params={"op": "cosine"},
    )
    assert vector_op(req).status_code == 200
    assert _sum(otel, "hartonomous.vector.duration", op="cosine") == before + 1


def test_search_records_its_duration_by_metric_and_row_bucket(otel: Otel, db: Database) -> None:
    repo = EmbeddingRepository(db)
    store = EmbeddingStore(repo, Limits(max_dim=64, max_rows=1000))
    vectors = np.random.default_rng(0).random((23, 8), dtype=np.float32)
    store.upsert("m", "t", [(f"e{i}", v.tolist()) for i, v in enumerate(vectors)])
    service = SearchService(IndexCache(SetRepository(repo.db)), max_dim=64, max_queries=4)
    before = _sum(otel, "hartonomous.search.duration", metric="dot", rows=100)
    service.search(vectors[:1], top_k=3, metric="dot")
    assert _sum(otel, "hartonomous.search.duration", metric="dot", rows=100) == before + 1


# -- the queue hop ------------------------------------------------------------------------


def test_traceparent_crosses_a_real_queue_into_the_runner(
    otel: Otel, db, storage_connection: str
) -> None:
    service = QueueServiceClient.from_connection_string(storage_connection)
    queue = JobQueue(service, f"tele-{uuid.uuid4().hex[:10]}")
    queue.ensure()
    from azure.storage.blob import BlobServiceClient

    payloads = PayloadStore(
        BlobModelStore(BlobServiceClient.from_connection_string(storage_connection), "payloads")
    )
    submitter = JobSubmitter(JobRepository(db), queue, payloads)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("upload") as upload:
        submitter.submit("model", {"version_id": "m-1"}, job_id="tele-job-1")

    (message,) = queue.client.receive_messages(max_messages=1)
    body = json.loads(message.content)
    trace_id = upload.get_span_context().trace_id
    assert body["traceparent"].split("-")[1] == f"{trace_id:032x}"

    seen: list[int] = []

    def handler(job_id: str, payload) -> dict:
        seen.append(trace.get_current_span().get_span_context().trace_id)
        return {"ok": True}

    runner = JobRunner(JobRepository(db), {"model": handler}, queue_name="q")
    with tracer.start_as_current_span("invocation", kind=SpanKind.CONSUMER) as invocation:
        outcome = runner.run(message.content, message_id=message.id)
    assert outcome.status == "succeeded"

    (job,) = otel.finished("job model")
    assert job.context.trace_id == trace_id == seen[0]  # the handler ran inside it
    enqueue_parent = body["traceparent"].split("-")[2]
    assert f"{job.parent.span_id:016x}" == enqueue_parent
    assert [link.context.span_id for link in job.links] == [invocation.get_span_context().span_id]
    assert job.attributes["job.id"] == "tele-job-1"
    assert _sum(otel, "hartonomous.jobs", kind="model", outcome="succeeded") >= 1
    assert _sum(otel, "hartonomous.job.duration", kind="model", outcome="succeeded") >= 1
    # the enqueue itself is traced by azure-core's plugin when the SDK is configured
    # (checked end to end); SQL spans of the job belong to the upload's trace
    sql = [s for s in otel.finished() if s.attributes.get("db.system") == "sqlite"]
    assert any(s.context.trace_id == trace_id and s.name == "UPDATE jobs" for s in sql)


def test_a_message_without_or_with_a_bad_traceparent_still_runs(otel: Otel, db) -> None:
    base = {"job_id": "no-trace", "kind": "model", "payload": {"version_id": "m"}}
    message, _ = parse_message(json.dumps(base))
    assert message.traceparent is None and "traceparent" not in message.to_json()
    for bad in (42, "garbage", "00-zz-yy-01"):
        message, _ = parse_message(json.dumps({**base, "traceparent": bad}))
    runner = JobRunner(JobRepository(db), {"model": lambda job_id, payload: {}})
    outcome = runner.run(json.dumps({**base, "job_id": "bad-trace", "traceparent": "garbage"}))
    assert outcome.status == "succeeded"
    (job,) = otel.finished("job model")
    assert job.context.is_valid  # a trace of its own


def test_the_last_failed_attempt_counts_a_poisoned_message(otel: Otel, db) -> None:
    def broken(job_id: str, payload) -> dict:
        raise ConnectionError("storage down")

    kind_runner = JobRunner(JobRepository(db), {"model": broken}, queue_name="q-poison-test")
    body = json.dumps({"job_id": "poisoned", "kind": "model", "payload": {"version_id": "m"}})
    for attempt in (1, 2):
        with pytest.raises(ConnectionError):
            kind_runner.run(body, dequeue_count=attempt, max_dequeue_count=2)
    assert _sum(otel, "hartonomous.queue.poisoned", queue="q-poison-test", kind="model") == 1
    assert _sum(otel, "hartonomous.jobs", kind="model", outcome="retry") >= 1
    spans = otel.finished("job model")
    assert [s.status.status_code for s in spans] == [StatusCode.ERROR, StatusCode.ERROR]


# -- errors the app answers itself --------------------------------------------------------


def test_a_5xx_the_app_answers_itself_is_recorded_on_the_invocation_span(otel: Otel) -> None:
    from shared.http.errors import RequestError, handle_errors

    @handle_errors
    def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("disk on fire")

    @handle_errors
    def missing(req: func.HttpRequest) -> func.HttpResponse:
        raise RequestError(404, "not_found", "no such thing")

    req = func.HttpRequest("GET", "http://localhost/api/x", body=b"")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("invocation-500", kind=SpanKind.SERVER):
        assert broken(req).status_code == 500
    with tracer.start_as_current_span("invocation-404", kind=SpanKind.SERVER):
        assert missing(req).status_code == 404
    (failed,) = otel.finished("invocation-500")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.events[0].attributes["exception.type"] == "RuntimeError"
    (not_found,) = otel.finished("invocation-404")
    assert not_found.status.status_code is StatusCode.UNSET and not not_found.events
