"""The real app through the local host: health, readiness, keys."""

from pathlib import Path

from tests.support.host import Host


def test_health_is_anonymous_and_ok(app_host: Host) -> None:
    reply = app_host.call("GET", "/health", key=None)
    assert reply.status == 200 and reply.json() == {"status": "ok"}


def test_ready_when_sql_and_storage_answer(app_host: Host) -> None:
    reply = app_host.call("GET", "/ready", key=None)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"sql", "blob_storage", "queue_storage"}


def test_function_level_routes_need_the_key(app_host: Host) -> None:
    body = {"a": [1, 2], "b": [3, 4]}
    assert app_host.call("POST", "/vectors/dot", body, key=None).status == 401
    assert app_host.call("POST", "/vectors/dot", body, key="wrong").status == 401
    assert app_host.call("POST", "/vectors/dot", body).status == 200


def test_migrations_on_demand_need_the_master_key(tmp_path: Path, app_storage: str) -> None:
    """What `azd deploy`'s hook calls on a fresh database: every migration is applied by
    that call, and a second call finds nothing left."""
    from shared.db.schema import MIGRATIONS
    from tests.support.host import MASTER_KEY, start_app, stop_host

    versions = [m.version for m in MIGRATIONS]
    host = start_app(tmp_path, app_storage)
    try:
        assert host.call("POST", "/database/migrate").status == 401  # a function key
        reply = host.call("POST", "/database/migrate", key=MASTER_KEY)
        assert reply.status == 200, reply.body
        assert reply.json() == {
            "version": versions[-1],
            "latest": versions[-1],
            "applied": versions,
        }
        again = host.call("POST", "/database/migrate", key=MASTER_KEY).json()
        assert again["applied"] == [] and again["version"] == versions[-1]
        assert host.call("GET", "/database/schema").json()["version"] == versions[-1]
    finally:
        stop_host(host)
