"""One error hierarchy (shared/errors.py) and one mapping to HTTP (shared/http/errors.py)."""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import subprocess
import sys

import azure.functions as func
import pytest

import shared
from shared.embeddings.npy_reader import NpyFormatError
from shared.embeddings.repository import EmbeddingDimensionError
from shared.errors import HartonomousError
from shared.http.errors import handle_errors, oip_errors, reply_for
from shared.http.requests import RequestError
from shared.inference.embedder import EmbeddingInputError, EmbeddingModelError
from shared.jobs.messages import MalformedMessageError
from shared.jobs.runner import PermanentJobError
from shared.jobs.submit import JobNotQueuedError
from shared.registry.errors import (
    InferenceInputError,
    IntegrityError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelValidationError,
)
from shared.settings import ROOT, ConfigError
from shared.storage.blob_store import UploadTooLargeError, UploadUrlUnavailableError
from shared.storage.names import InvalidNameError
from shared.vectors.errors import DimensionMismatchError, LimitExceededError

CASES = [
    (DimensionMismatchError.between("b", 3, "a", 4), 400, "dimension_mismatch", "b"),
    (LimitExceededError("vectors", "too many rows"), 400, "limit_exceeded", "vectors"),
    (InvalidNameError("name", "a..b", "is not valid"), 400, "invalid_name", "name"),
    (InferenceInputError("input 'X': wrong", "X"), 400, "invalid_input", "X"),
    (EmbeddingInputError("texts[2]", "not text"), 400, "invalid_text", "texts[2]"),
    (NpyFormatError("not a .npy"), 400, "invalid_npy", None),
    (MalformedMessageError("message is not JSON"), 400, "malformed_message", None),
    (PermanentJobError("model 'm' is not registered"), 400, "permanent_failure", None),
    (ModelNotFoundError("model 'x' is missing", field="model"), 404, "model_not_found", "model"),
    (EmbeddingDimensionError("m", "t", 3, 4), 409, "dimension_conflict", "items"),
    (ModelNotReadyError("model 'x' is failed"), 409, "model_not_ready", None),
    (UploadTooLargeError(10), 413, "body_too_large", None),
    (ModelValidationError("not an ONNX file"), 422, "invalid_model", None),
    (EmbeddingModelError("model has no input_ids input"), 422, "invalid_model", None),
    (IntegrityError("sha256 differs"), 422, "integrity_error", None),
    (UploadUrlUnavailableError("no account key"), 501, "upload_url_unavailable", None),
    (RequestError(404, "unknown_operation", "op: 'x'", "op"), 404, "unknown_operation", "op"),
]  # fmt: skip


def _req() -> func.HttpRequest:
    return func.HttpRequest("GET", "http://localhost/api/x", body=b"")


def _route(exc: BaseException):
    def route(req: func.HttpRequest) -> func.HttpResponse:
        raise exc

    return route


@pytest.mark.parametrize(("exc", "status", "code", "field"), CASES)
def test_each_service_error_has_one_kind_and_one_status(
    exc: HartonomousError, status: int, code: str, field: str | None
) -> None:
    assert isinstance(exc, HartonomousError)
    reply = reply_for(exc, "route")
    assert (reply.status, reply.code, reply.field) == (status, code, field)
    assert reply.message == exc.message == str(exc)


@pytest.mark.parametrize(("exc", "status", "code", "field"), CASES)
def test_both_shapes_come_from_the_same_mapping(
    exc: HartonomousError, status: int, code: str, field: str | None
) -> None:
    app = handle_errors(_route(exc))(_req())
    oip = oip_errors(_route(exc))(_req())
    assert app.status_code == oip.status_code == status
    body = json.loads(app.get_body())["error"]
    assert body["code"] == code and body["message"] == exc.message and body.get("field") == field
    assert json.loads(oip.get_body()) == {"error": exc.message}


#: Bases every exception has. Any other builtin base would let an ``except ValueError``
#: meant for numpy or json catch a service error, which callers catch by its kind instead.
_EVERY_EXCEPTION = {BaseException, Exception, object}


def _error_classes() -> set[type[HartonomousError]]:
    """Every subclass of HartonomousError that the deployed package defines."""
    for module in pkgutil.walk_packages(shared.__path__, "shared."):
        importlib.import_module(module.name)
    found: set[type[HartonomousError]] = set()
    todo: list[type[HartonomousError]] = [HartonomousError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return {c for c in found if c.__module__.startswith("shared.")}


def test_service_errors_derive_from_the_hierarchy_and_no_builtin() -> None:
    classes = _error_classes()
    assert {
        DimensionMismatchError,
        EmbeddingDimensionError,
        JobNotQueuedError,
        MalformedMessageError,
        UploadUrlUnavailableError,
    } <= classes
    builtin_bases = {
        f"{cls.__module__}.{cls.__qualname__}": sorted(
            base.__name__
            for base in cls.__mro__
            if base.__module__ == "builtins" and base not in _EVERY_EXCEPTION
        )
        for cls in classes
    }
    assert {name: bases for name, bases in builtin_bases.items() if bases} == {}


@pytest.mark.parametrize("shape", [handle_errors, oip_errors])
def test_an_unknown_error_is_a_logged_500_without_internals(
    shape, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Server=tcp:db.internal;Pwd=hunter2"
    with caplog.at_level(logging.ERROR, logger="shared.http.errors"):
        reply = shape(_route(RuntimeError(secret)))(_req())
    assert reply.status_code == 500
    assert secret not in reply.get_body().decode()
    assert "see its log" in reply.get_body().decode()
    assert any(r.exc_info and secret in str(r.exc_info[1]) for r in caplog.records)


def test_a_configuration_error_is_a_503_naming_the_setting_but_not_its_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exc = ConfigError("SQL_CONNECTION_STRING", "expected sqlite:/// or ODBC, got 'Pwd=hunter2'")
    with caplog.at_level(logging.ERROR, logger="shared.http.errors"):
        reply = handle_errors(_route(exc))(_req())
    body = json.loads(reply.get_body())["error"]
    assert reply.status_code == 503 and body["code"] == "not_configured"
    assert "SQL_CONNECTION_STRING" in body["message"]
    assert "hunter2" not in json.dumps(body)
    assert any("hunter2" in r.getMessage() for r in caplog.records)


def test_a_pydantic_error_that_escapes_a_route_is_a_400_naming_the_field() -> None:
    from pydantic import BaseModel, ValidationError

    class Shape(BaseModel):
        top_k: int

    try:
        Shape.model_validate({"top_k": "many"})
    except ValidationError as exc:
        caught = exc
    reply = handle_errors(_route(caught))(_req())
    body = json.loads(reply.get_body())["error"]
    assert reply.status_code == 400 and body["field"] == "top_k"


def test_the_services_import_no_azure_functions() -> None:
    code = (
        "import sys, shared.errors, shared.registry.errors, shared.vectors.errors, "
        "shared.storage.blob_store, shared.embeddings.repository, shared.jobs.runner, "
        "shared.inference.embedder, shared.settings; print('azure.functions' in sys.modules)"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_no_reply_carries_nan_or_infinity_tokens() -> None:
    """json.dumps writes NaN/Infinity as bare tokens no JSON parser reads: a reply holding
    one (e.g. a job row written straight to the table) says null there instead."""
    from shared.http.responses import json_response

    def strict(text: str):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text}"))

    body = {"jobs": [{"payload": {"vector": [1.0, float("nan"), float("-inf")]}, "n": (1, 2)}]}
    reply = json_response(body)
    assert strict(reply.get_body()) == {
        "jobs": [{"payload": {"vector": [1.0, None, None]}, "n": [1, 2]}]
    }
    assert strict(json_response({"a": [1.5, "NaN"]}).get_body()) == {"a": [1.5, "NaN"]}


def _storage_failures() -> list[BaseException]:
    """What the storage SDK raises when the account does not answer: a real one (nothing
    listens on the port), a read that timed out, and the service's own 503."""
    from azure.core.exceptions import HttpResponseError, ServiceResponseTimeoutError
    from azure.storage.blob import BlobServiceClient

    from devhost.azurite import connection_string, free_port

    dead = free_port()
    service = BlobServiceClient.from_connection_string(
        connection_string(dead, dead, dead), retry_total=0
    )
    try:
        service.get_blob_client("c", "b").upload_blob(b"x")
    except Exception as exc:
        refused = exc
    busy = HttpResponseError(message="ServerBusy")
    busy.status_code = 503
    return [refused, ServiceResponseTimeoutError("read timeout=10"), busy]


@pytest.mark.parametrize("shape", [handle_errors, oip_errors])
def test_storage_that_does_not_answer_is_a_503_with_retry_after_on_every_route(shape) -> None:
    """Mapped once, for every route, so no route (POST /api/models among them) answers
    a 500 when storage is down."""
    from azure.core.exceptions import ClientAuthenticationError

    for exc in _storage_failures():
        reply = shape(_route(exc))(_req())
        assert reply.status_code == 503, (exc, reply.get_body())
        assert int(reply.headers["Retry-After"]) > 0
        assert "storage" in reply.get_body().decode()
        assert "127.0.0.1" not in reply.get_body().decode()  # no host in the reply
    refused = ClientAuthenticationError(message="AuthorizationFailure")  # a 403: our fault
    refused.status_code = 403
    assert shape(_route(refused))(_req()).status_code == 500


def _cut_reply() -> BaseException:
    """What the storage SDK raises when the connection breaks mid-reply, for real: a
    server that sends the headers and a few bytes of a longer body, then hangs up."""
    import socket
    import threading

    from azure.storage.blob import BlobServiceClient

    from devhost.azurite import connection_string

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer_one() -> None:
        conn, _ = server.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n<?xml version")

    serving = threading.Thread(target=answer_one, daemon=True)
    serving.start()
    service = BlobServiceClient.from_connection_string(
        connection_string(port, port, port), retry_total=0
    )
    try:
        service.create_container("models")  # the first call of an upload (ensure_container)
    except Exception as exc:
        return exc
    finally:
        serving.join(10)
        server.close()
    raise AssertionError("a reply cut short raised nothing")


@pytest.mark.parametrize("shape", [handle_errors, oip_errors])
def test_a_storage_reply_cut_short_is_a_503_with_retry_after(shape) -> None:
    """The SDK raises IncompleteReadError (an HttpResponseError without a status) when the
    connection breaks mid-reply: storage did not answer, not a fault of ours."""
    from azure.core.exceptions import HttpResponseError

    exc = _cut_reply()
    assert isinstance(exc, HttpResponseError) and exc.status_code is None, repr(exc)
    for cut in (exc, HttpResponseError(exc, error=exc)):  # also as a download wraps it
        reply = shape(_route(cut))(_req())
        assert reply.status_code == 503, (cut, reply.get_body())
        assert int(reply.headers["Retry-After"]) > 0
        assert "storage" in reply.get_body().decode()


@pytest.mark.parametrize("shape", [handle_errors, oip_errors])
def test_a_full_batch_queue_is_a_429_with_retry_after_in_each_shape(shape) -> None:
    from shared.errors import TooBusyError

    reply = shape(_route(TooBusyError("256 search calls are queued on this instance")))(_req())
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "1"
    body = json.loads(reply.get_body())
    message = body["error"] if shape is oip_errors else body["error"]["message"]
    assert "256 search calls are queued" in message
    if shape is handle_errors:
        assert body["error"]["code"] == "too_busy"
