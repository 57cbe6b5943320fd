"""The real app through the local host: health, readiness, keys."""

from tests.e2e.conftest import AppHost


def test_health_is_anonymous_and_ok(app_host: AppHost) -> None:
    reply = app_host.call("GET", "/health", key=None)
    assert reply.status == 200 and reply.json() == {"status": "ok"}


def test_ready_when_sql_and_storage_answer(app_host: AppHost) -> None:
    reply = app_host.call("GET", "/ready", key=None)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"sql", "blob_storage", "queue_storage"}


def test_function_level_routes_need_the_key(app_host: AppHost) -> None:
    body = {"a": [1, 2], "b": [3, 4]}
    assert app_host.call("POST", "/vectors/dot", body, key=None).status == 401
    assert app_host.call("POST", "/vectors/dot", body, key="wrong").status == 401
    assert app_host.call("POST", "/vectors/dot", body).status == 200
