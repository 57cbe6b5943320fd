"""Readiness names the part that fails, through the real host."""

from pathlib import Path

from tests.support.host import start_app, stop_host


def test_ready_is_503_naming_sql_when_the_database_cannot_open(
    tmp_path: Path, app_storage: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    host = start_app(
        tmp_path, app_storage, {"SQL_CONNECTION_STRING": f"sqlite:///{blocker}/x/app.db"}
    )
    try:
        assert host.call("GET", "/health", key=None).status == 200  # liveness unaffected
        reply = host.call("GET", "/ready", key=None)
        assert reply.status == 503
        body = reply.json()
        assert body["failed"] == ["sql"] and body["status"] == "unavailable"
        assert body["checks"] == {"sql": "failed", "blob_storage": "ok", "queue_storage": "ok"}
        assert str(blocker) not in reply.body.decode()  # no paths or messages anonymously
        details = host.call("GET", "/ready/details")
        assert details.status == 503 and str(blocker) in details.json()["checks"]["sql"]
        assert host.call("GET", "/ready/details", key=None).status == 401
    finally:
        stop_host(host)


def test_in_azure_a_missing_setting_is_named_and_only_its_functions_fail(
    tmp_path: Path, app_storage: str
) -> None:
    """WEBSITE_INSTANCE_ID set, SQL_CONNECTION_STRING not: no SQLite file appears in the
    app folder, readiness names the setting, a route that needs SQL says which setting is
    missing, and vector math, which needs none, still works."""
    host = start_app(
        tmp_path,
        app_storage,
        {"WEBSITE_INSTANCE_ID": "e2e-instance", "SQL_CONNECTION_STRING": ""},
    )
    try:
        reply = host.call("GET", "/ready", key=None)
        assert reply.status == 503
        assert reply.json()["checks"]["sql"] == "not configured: SQL_CONNECTION_STRING"
        models = host.call("GET", "/models")
        assert models.status == 503
        error = models.json()["error"]
        assert error["code"] == "not_configured" and "SQL_CONNECTION_STRING" in error["message"]
        assert host.call("POST", "/vectors/dot", {"a": [1, 2], "b": [3, 4]}).json()["result"] == (
            11.0
        )
    finally:
        stop_host(host)
