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
