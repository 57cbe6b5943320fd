"""Hostile inputs, each aimed in-process at the one parser that must refuse it.

The matrix through the real host is `test_hostile_input.py`; these name the function
that must hold, so a failure points at it, not at a 500 on some route.
"""

from __future__ import annotations

import json
from pathlib import Path

import azure.functions as func
import pytest

from devhost.route_templates import compile_route
from shared.http.errors import RequestError
from shared.http.requests import read_json
from shared.jobs.messages import MalformedMessageError, parse_message
from shared.jobs.runner import JobRunner
from shared.vectors.shapes import VectorOpRequest
from tests.support.inference import Harness

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    "template", ["j/{id:int}", "j/{id:long}", "j/{id:min(1)}", "j/{id:range(1,9)}"]
)
def test_an_integer_constraint_refuses_a_huge_number_instead_of_raising(template: str) -> None:
    """int() refuses strings over 4300 digits (ValueError): uncaught, a long path segment is
    a 500."""
    route = compile_route(template)
    assert route.match("j/" + "9" * 5000) is None
    assert route.match("j/" + "-" + "1" * 4301) is None
    assert route.match("j/5") == {"id": "5"}


def test_an_integer_constraint_takes_ascii_digits_only() -> None:
    """ASP.NET parses route ints with the invariant culture: '٣' (Arabic-Indic 3) is no int."""
    assert compile_route("j/{id:int}").match("j/\u0663") is None


def test_deeply_nested_json_body_is_a_400_not_a_recursion_error() -> None:
    req = func.HttpRequest("POST", "http://h/api/vectors/dot", body=DEEP.encode())
    with pytest.raises(RequestError) as err:
        read_json(req, VectorOpRequest)
    assert err.value.status == 400 and "nested too deeply" in err.value.message


def test_deeply_nested_queue_message_is_malformed_not_a_recursion_error() -> None:
    with pytest.raises(MalformedMessageError, match="nested too deeply"):
        parse_message(DEEP)


def test_a_number_of_5000_digits_is_a_400_and_a_malformed_message_not_a_value_error() -> None:
    """CPython's int() refuses more than 4300 digits with a bare ValueError, which the
    JSON parsers did not catch: a 500 over HTTP, a failed invocation on the queue."""
    body = '{"a": [' + "9" * 5000 + "]}"
    req = func.HttpRequest("POST", "http://h/api/vectors/norm", body=body.encode())
    with pytest.raises(RequestError) as err:
        read_json(req, VectorOpRequest)
    assert err.value.status == 400 and "more than 4300 digits" in err.value.message
    with pytest.raises(MalformedMessageError, match="more than 4300 digits"):
        parse_message(body)


@pytest.mark.parametrize("name", ["../models/iris.onnx", "ids.json", "job-payload-1.json"])
def test_a_payload_reference_names_only_a_blob_the_app_wrote(name: str) -> None:
    """A queue message may say ``{"$blob": name}``: only the names PayloadStore.put makes
    are read, never another blob or a path out of the ingest container (nothing is
    fetched: the name is refused first)."""
    from shared.jobs.payloads import PayloadStore

    message = {"job_id": "r", "kind": "model", "payload": {"$blob": name, "bytes": 9}}
    store = PayloadStore(store=None)  # type: ignore[arg-type]  # never reached
    with pytest.raises(MalformedMessageError, match="not a payload blob this app wrote"):
        parse_message(json.dumps(message), store.load)


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_schema_version_must_be_the_integer_1(version: object) -> None:
    """`True == 1` and `1.0 == 1` in Python: neither is a schema version this app reads."""
    body = {
        "job_id": "v",
        "kind": "model",
        "schema_version": version,
        "payload": {"version_id": "m"},
    }
    with pytest.raises(MalformedMessageError, match="schema_version"):
        parse_message(json.dumps(body))


def test_an_invalid_job_id_is_not_carried_into_the_error() -> None:
    """Only an id that is valid can name the failed row: a lone surrogate cannot be stored."""
    body = '{"job_id": "\\ud800", "kind": "model", "payload": {"version_id": "m"}}'
    with pytest.raises(MalformedMessageError) as err:
        parse_message(body)
    assert err.value.job_id is None


def test_a_malformed_message_never_overwrites_a_job_that_exists(repos) -> None:
    """A bad message that names a real job's id becomes its own failed row."""
    jobs = repos[0]
    runner = JobRunner(jobs, {"model": lambda job_id, payload: {"ok": True}})
    good = {"job_id": "real-1", "kind": "model", "payload": {"version_id": "m"}}
    assert runner.run(json.dumps(good)).status == "succeeded"
    bad = {"job_id": "real-1", "kind": "bake", "payload": {}}
    out = runner.run(json.dumps(bad), message_id="q-9")
    assert out.status == "failed" and out.job_id != "real-1"
    assert jobs.get("real-1").status == "succeeded" and jobs.get("real-1").error is None
    row = jobs.get(out.job_id)
    assert row.status == "failed" and "unknown job kind" in row.error
    # the same bad message again (at least once delivery) adds no second row
    assert runner.run(json.dumps(bad), message_id="q-9").job_id == out.job_id


def test_a_malformed_message_with_a_lone_surrogate_id_is_recorded(repos) -> None:
    out = JobRunner(repos[0], {}).run(b'{"job_id": "\\ud800x", "kind": "bake", "payload": {}}')
    assert out.status == "failed" and repos[0].get(out.job_id).status == "failed"


@pytest.mark.parametrize("field", ["scalar", "t"])
def test_a_non_finite_scalar_is_refused_by_its_name(field: str) -> None:
    """`scale` with scalar NaN answered 'result: overflows float32', blaming the result."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=field):
        VectorOpRequest.model_validate({"a": [1.0], field: float("nan")})


@pytest.mark.parametrize("top_k", [True, "5", 2.5])
def test_top_k_takes_a_json_integer_only(top_k: object) -> None:
    """Lax int read `true` as top_k 1 and `"5"` as 5: a wrong type must be a 400."""
    from pydantic import ValidationError

    from shared.search.shapes import SearchRequest

    with pytest.raises(ValidationError, match="top_k"):
        SearchRequest.model_validate({"vector": [1.0], "top_k": top_k})
    assert SearchRequest.model_validate({"vector": [1.0], "top_k": 5}).top_k == 5
    assert SearchRequest.model_validate({"vector": [1.0], "top_k": 5.0}).top_k == 5  # JSON


@pytest.mark.parametrize("version", [str(10**30), str(2**31), "0"])
def test_a_model_version_beyond_a_sql_int_is_a_400(version: str) -> None:
    """int('1'*30) reached SQLite, which cannot bind it: OverflowError, a 500."""
    from shared.inference.protocol.routes import _name_version

    req = func.HttpRequest(
        "GET", "http://h/api/v2/models/m", body=b"", route_params={"name": "m", "version": version}
    )
    with pytest.raises(RequestError, match="version"):
        _name_version(req)


def test_queue_binding_data_survives_a_deeply_nested_message() -> None:
    """The host reads a message's JSON keys for binding data: a RecursionError there would
    fail the invocation before the app could record the message as malformed."""
    from devhost.queue_messages import HostQueueMessage, queue_binding_data

    msg = HostQueueMessage(id="m1", body=DEEP.encode(), dequeue_count=1, pop_receipt="r")
    assert queue_binding_data(msg)["queueTrigger"] == DEEP


def test_the_function_key_in_the_query_is_no_unknown_field() -> None:
    """`?code=<key>` is a documented way to authenticate: the strict query models
    answered 400 `code: unknown field` to every route that reads a query."""
    from shared.http.requests import read_query
    from shared.jobs.shapes import JobQuery

    req = func.HttpRequest(
        "GET", "http://h/api/jobs", body=b"", params={"code": "k", "status": "failed"}
    )
    assert read_query(req, JobQuery).status == "failed"
    with pytest.raises(RequestError, match="bogus: unknown field"):
        read_query(func.HttpRequest("GET", "http://h", body=b"", params={"bogus": "1"}), JobQuery)


def test_a_refused_huge_shape_leaves_a_log_row_analytics_can_read(
    harness: Harness, tmp_path: Path
) -> None:
    """A log row that kept a refused request's claimed 10**12 rows would be past int32,
    and every analytics route would answer 500 from then on. A refused request counts no
    rows at all (none were inferred)."""
    from shared.analytics.reader import read_inference
    from shared.inference.protocol.types import InferRequest
    from shared.registry.errors import InferenceInputError
    from tests.support.models import write_classifier

    harness.register("iris", write_classifier(tmp_path))
    huge = {"name": "X", "shape": [10**12, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    with pytest.raises(InferenceInputError):
        harness.service.infer("iris", None, InferRequest(inputs=[huge]))
    (row,) = harness.log.recent("iris")
    assert row.outcome == "failed" and row.rows == 0
    events = read_inference(harness.db, since=None)
    assert len(events) == 1 and int(events.events["rows"][0]) == row.rows


def test_an_empty_integer_tensor_is_no_server_error(harness: Harness, tmp_path: Path) -> None:
    """`shape [0, 3]` with `data []` for an INT64 input: the range check took the min of
    an empty array (ValueError, a 500). An empty batch runs and answers empty."""
    from shared.inference.protocol.types import InferRequest
    from tests.support.models import write_mixed

    harness.register("mixed", write_mixed(tmp_path))
    request = InferRequest(
        inputs=[
            {"name": "ids", "shape": [0, 3], "datatype": "INT64", "data": []},
            {"name": "half", "shape": [0, 2], "datatype": "FP16", "data": []},
            {"name": "mask", "shape": [0], "datatype": "BOOL", "data": []},
        ]
    )
    out = {o.name: o for o in harness.service.infer("mixed", None, request).outputs}
    assert out["ids_plus"].shape == [0, 3] and out["ids_plus"].data.tolist() == []


def test_a_variance_past_float32_is_a_400_not_infinity_in_the_json() -> None:
    """mean_variance checked the float64 variance, then sent it as float32: 9e76 became
    `Infinity`, a 200 no JSON parser but Python's reads."""
    from shared.vectors.routes import vector_aggregate

    req = func.HttpRequest(
        "POST",
        "http://h/api/vectors/aggregate/mean_variance",
        route_params={"op": "mean_variance"},
        body=json.dumps({"vectors": [[3e38], [-3e38]]}).encode(),
    )
    reply = vector_aggregate(req)
    assert reply.status_code == 400 and b"Infinity" not in reply.get_body()
    assert json.loads(reply.get_body())["error"]["field"] == "result"


@pytest.mark.parametrize("rows", [[[1e-45, 0.0]], [[1e-45, 0.0], [3.0, 4.0], [0.0, 0.0]]])
def test_normalize_of_a_subnormal_vector_is_a_unit_vector(rows: list[list[float]]) -> None:
    """1/|v| overflowed float32 for |v| < 2.9e-39: inf and NaN, then a 400 blaming the
    caller ('result: overflows float32') for a vector whose unit vector is plain."""
    import warnings

    import numpy as np

    from shared.vectors import kernels

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way either
        one = kernels.normalize(np.array(rows[0], dtype=np.float32))
        many = kernels.normalize(np.array(rows, dtype=np.float32))
    assert one.tolist() == [1.0, 0.0] and many[0].tolist() == [1.0, 0.0]
    if len(rows) > 1:
        assert np.allclose(many[1], [0.6, 0.8]) and many[2].tolist() == [0.0, 0.0]
