"""Keys: every route but health, readiness and the OpenAPI document needs one."""

from __future__ import annotations

import json
import subprocess
import sys

from shared.settings import ROOT

OPEN = {"health", "ready", "oip_live", "oip_ready", "openapi"}

PROBE = """
import json, function_app
out = {}
for fn in function_app.app.get_functions():
    trigger = json.loads(fn.get_function_json())["bindings"][0]
    if trigger["type"] == "httpTrigger":
        out[fn.get_function_name()] = trigger["authLevel"]
print(json.dumps(out))
"""


def test_every_route_but_health_and_the_openapi_document_needs_a_key() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    levels = json.loads(done.stdout)
    assert set(levels) >= OPEN
    for name, level in levels.items():
        if name in OPEN:
            assert level == "ANONYMOUS", name
        else:
            assert level in ("FUNCTION", "ADMIN"), (name, level)


def test_keys_are_compared_in_constant_time_against_every_key() -> None:
    """No early exit: the comparison visits every key whatever matches (hmac)."""
    import hmac

    from devhost.auth import KeyRing

    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append(1)
        return real(a, b)

    ring = KeyRing(("k1", "k2", "k3"), "master")
    hmac.compare_digest = counting
    try:
        assert ring.allows("FUNCTION", "k1")
        assert len(calls) == 4  # master + three function keys, though the first matched
        calls.clear()
        assert not ring.allows("ADMIN", "k1") and len(calls) == 1
    finally:
        hmac.compare_digest = real
