"""The OpenAPI document covers every HTTP function, and schemathesis finds no 5xx."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error

import function_app  # noqa: F401 - registers every route declaration
from shared.http import openapi
from shared.settings import ROOT
from tests.support.host import Host

schema = schemathesis.openapi.from_dict(openapi.build())
#: `make fuzz` raises this and lets hypothesis pick new inputs each run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

PROBE = """
import json, function_app
out = []
for fn in function_app.app.get_functions():
    for b in json.loads(fn.get_function_json())["bindings"]:
        if b["type"] == "httpTrigger":
            out.append([fn.get_function_name(), b["route"], [m.upper() for m in b["methods"]]])
print(json.dumps(out))
"""


def test_document_lists_every_http_function(app_host: Host) -> None:
    reply = app_host.call("GET", "/openapi.json", key=None)
    assert reply.status == 200
    doc = reply.json()
    assert doc["openapi"].startswith("3.1")
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    functions = json.loads(done.stdout)
    assert len(functions) >= 8
    for name, route, methods in functions:
        path = "/" + route.replace(":int", "")
        assert path in doc["paths"], f"{name}: {path} missing from the OpenAPI document"
        for method in methods:
            assert method.lower() in doc["paths"][path], f"{name}: {method} {path}"
    search = doc["paths"]["/search"]["post"]
    assert search["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "SearchRequest"
    )
    assert "401" in search["responses"] and "400" in search["responses"]


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize="FUZZ_EXAMPLES" not in os.environ,
)
def test_no_input_makes_a_server_error(case, app_host: Host) -> None:
    case.call_and_validate(
        base_url=app_host.base_url,
        headers={"x-functions-key": app_host.key},
        checks=[not_a_server_error],
        timeout=30,
    )


def test_each_route_documents_its_own_error_shape_and_key() -> None:
    """The OIP routes answer `{"error": "..."}`, the /v1 routes OpenAI's shape with a
    Bearer key, the rest the app's shape with a function key: the document says which."""
    doc = openapi.build()

    def error_schema(path: str, method: str, status: str) -> str:
        response = doc["paths"][path][method]["responses"][status]
        return response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]

    assert error_schema("/search", "post", "400") == "ErrorBody"
    assert error_schema("/v2/models/{name}/infer", "post", "400") == "OipErrorBody"
    bearer = [("/v1/embeddings", "post"), ("/v1/models", "get"), ("/v1/rerank", "post")]
    for path, method in bearer:
        op = doc["paths"][path][method]
        assert op["security"] == [{"bearerKey": []}], path
        assert error_schema(path, method, "401") == "OpenAIErrorBody", path
    schemas = doc["components"]["schemas"]
    assert set(schemas["OpenAIErrorDetail"]["properties"]) == {"message", "type", "param", "code"}
    assert doc["components"]["securitySchemes"]["bearerKey"] == {"type": "http", "scheme": "bearer"}
    assert doc["paths"]["/search"]["post"]["security"][0] == {"functionKey": []}
