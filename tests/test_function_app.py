"""function_app.py imports cleanly and exposes exactly the declared functions: every
route declared with `http_route` (shared/http/routing.py) and listed in README.md's route
table, with its methods and key, and the two triggers.

An import error there is swallowed by the Python worker ("0 functions found"), so
this runs the import in a fresh interpreter, with no settings, as Azure would.
"""

import json
import re
import subprocess
import sys

from shared.settings import ROOT

PROBE = """
import json, function_app
from shared.http.routing import ROUTES
functions = {}
for fn in function_app.app.get_functions():
    meta = json.loads(fn.get_function_json())
    trigger = next(b for b in meta["bindings"] if b["type"].endswith("Trigger"))
    functions[fn.get_function_name()] = trigger
declared = {d.name: [list(d.methods), d.route, d.auth] for d in ROUTES}
print(json.dumps({"functions": functions, "declared": declared, "declarations": len(ROUTES)}))
"""

#: The routes that answer without a key: liveness and readiness (App Service and the
#: KServe protocol probe them unauthenticated) and the OpenAPI document. Any other route
#: without a key would be an open door.
ANONYMOUS = {"health", "ready", "oip_live", "oip_ready", "openapi"}
#: Anonymous at the host because the host reads keys only from `x-functions-key` or
#: `?code=`: the OpenAI-shaped routes (/api/v1/...), which check `Authorization: Bearer`
#: themselves first thing (shared/http/api_keys.py).
BEARER = {"openai_embeddings", "openai_models", "openai_model", "rerank"}


def _probe() -> dict:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def readme_routes() -> set[tuple[str, str, str]]:
    """(method, route, key) of each row of README.md's route table; a route's query part
    (`models?name=`, `analytics/models[?days=N]`) is not part of the route."""
    text = (ROOT / "README.md").read_text()
    table = text.split("\n## Routes\n", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in table.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 5 or cells[0] in ("area", "") or set(cells[0]) <= {"-"}:
            continue
        _, method, route, key, _ = cells
        rows.add((method, re.split(r"[?\[]", route.strip("`"))[0], key))
    return rows


def test_function_app_imports_without_settings_and_exposes_exactly_the_declared_routes() -> None:
    found = _probe()
    functions = found["functions"]
    http = {name: t for name, t in functions.items() if t["type"] == "httpTrigger"}
    others = {name: t["type"] for name, t in functions.items() if name not in http}
    assert others == {"run_ingestion_job": "queueTrigger", "register_model_blob": "blobTrigger"}
    assert functions["run_ingestion_job"]["queueName"] == "ingestion-jobs"
    assert functions["register_model_blob"]["path"] == "models/{name}.onnx"
    assert functions["register_model_blob"]["source"] == "EventGrid"

    # Each HTTP function is one declaration, and each declaration one function, with the
    # route, methods and key it declares (none registered around `http_route`).
    assert len(http) == found["declarations"] == len(found["declared"])
    served = {name: [t["methods"], t["route"], t["authLevel"].lower()] for name, t in http.items()}
    assert served == found["declared"]

    # README.md's route table lists exactly these, with the same methods and keys.
    rows = {(m, t["route"], t["authLevel"].lower()) for t in http.values() for m in t["methods"]}
    assert readme_routes() == rows
    assert {name for name, t in http.items() if t["authLevel"] == "ANONYMOUS"} == (
        ANONYMOUS | BEARER
    )
    assert {name for name, t in http.items() if t["authLevel"] == "ADMIN"} == {"database_migrate"}


def test_importing_function_app_loads_no_heavy_modules() -> None:
    code = (
        "import sys, function_app; "
        "print(sorted(m for m in ('onnxruntime', 'numpy', 'pyodbc', 'pynvml') if m in sys.modules))"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
