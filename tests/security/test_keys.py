"""Keys: every route but health, readiness and the OpenAPI document needs one: a
function key at the host, or (the OpenAI-shaped routes, anonymous at the host, which
reads keys only from x-functions-key or ?code=) a Bearer key the route checks itself."""

from __future__ import annotations

import json
import subprocess
import sys

from shared.settings import ROOT

OPEN = {"health", "ready", "oip_live", "oip_ready", "openapi"}
#: Anonymous at the host; each checks `Authorization: Bearer` first thing.
BEARER = {"openai_embeddings", "openai_models", "openai_model", "rerank"}

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
    assert set(levels) >= OPEN | BEARER
    for name, level in levels.items():
        if name in OPEN | BEARER:
            assert level == "ANONYMOUS", name
        else:
            assert level in ("FUNCTION", "ADMIN"), (name, level)


BEARER_PROBE = """
import json, sys, azure.functions as func, function_app
out = {}
for fn in function_app.app.get_functions():
    name = fn.get_function_name()
    if name not in sys.argv[1:]:
        continue
    for auth in (None, "Bearer wrong-key", "wrong-scheme k"):
        headers = {"content-type": "application/json"}
        if auth:
            headers["authorization"] = auth
        req = func.HttpRequest(
            "POST", "http://h/api/x", headers=headers, body=b"{}", route_params={"model": "m"}
        )
        reply = fn.get_user_function()(req)
        out.setdefault(name, []).append([reply.status_code, json.loads(reply.get_body())])
print(json.dumps(out))
"""


def test_the_bearer_routes_refuse_a_call_without_an_accepted_key() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LOCAL_FUNCTION_KEYS": "k"}
    done = subprocess.run(
        [sys.executable, "-c", BEARER_PROBE, *sorted(BEARER)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    replies = json.loads(done.stdout)
    assert set(replies) == BEARER
    for name, answers in replies.items():
        for status, body in answers:
            assert status == 401, (name, status, body)
            assert "wrong-key" not in json.dumps(body)  # a key is never echoed


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
