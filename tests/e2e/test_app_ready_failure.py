"""Readiness names the part that fails, through the real host."""

from pathlib import Path

from tests.e2e.conftest import start_host, stop_host


def test_ready_is_503_naming_sql_when_the_database_cannot_open(
    tmp_path: Path, storage_connection: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    host = start_host(
        tmp_path, storage_connection, {"SQL_CONNECTION_STRING": f"sqlite:///{blocker}/x/app.db"}
    )
    try:
        assert host.call("GET", "/health", key=None).status == 200  # liveness unaffected
        reply = host.call("GET", "/ready", key=None)
        assert reply.status == 503
        body = reply.json()
        assert body["failed"] == ["sql"] and body["status"] == "unavailable"
        assert body["checks"]["blob_storage"] == "ok"
    finally:
        stop_host(host)
