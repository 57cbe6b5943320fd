"""function_app.py imports cleanly and exposes the expected functions.

An import error there is swallowed by the Python worker ("0 functions found"), so
this runs the import in a fresh interpreter, with no settings, as Azure would.
"""

import json
import subprocess
import sys

from shared.settings import ROOT

PROBE = """
import json, function_app
out = {}
for fn in function_app.app.get_functions():
    meta = json.loads(fn.get_function_json())
    trigger = next(b for b in meta["bindings"] if b["type"].endswith("Trigger"))
    out[fn.get_function_name()] = trigger
print(json.dumps(out))
"""


def _functions() -> dict:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_function_app_imports_without_settings_and_counts_functions_by_trigger() -> None:
    functions = _functions()
    by_type: dict[str, int] = {}
    for trigger in functions.values():
        by_type[trigger["type"]] = by_type.get(trigger["type"], 0) + 1
    assert by_type.get("httpTrigger", 0) >= 2
    assert functions["health"]["route"] == "health"
    assert functions["health"]["authLevel"] == "ANONYMOUS"
    assert functions["ready"]["authLevel"] == "ANONYMOUS"
    assert by_type["queueTrigger"] == 1 and by_type["blobTrigger"] == 1
    assert functions["run_ingestion_job"]["queueName"] == "ingestion-jobs"
    assert functions["register_model_blob"]["path"] == "models/{name}.onnx"
    assert functions["register_model_blob"]["source"] == "EventGrid"


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
