"""SQLite busy or locked beyond its timeout, through the real host: bounded waiting,
then a 503 with Retry-After, never a 500; it recovers once the lock goes."""

from __future__ import annotations

from pathlib import Path

from tests.support.host import start_app, stop_host


def test_a_locked_database_is_a_503_with_retry_after_never_a_500(
    tmp_path: Path, storage_connection: str, record_property
) -> None:
    import sqlite3

    host = start_app(tmp_path, storage_connection, {"SQL_BUSY_TIMEOUT_MS": "300"})
    try:
        item = {"model_id": "busy", "items": [{"entity_id": "a", "vector": [1.0, 0.0]}]}
        assert host.call("PUT", "/embeddings", item).status == 200  # the file exists now
        holder = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            reply = host.call("PUT", "/embeddings", item)
            assert reply.status == 503, reply.body
            assert reply.headers["retry-after"] == "2"
            assert reply.json()["error"]["code"] == "database_busy"
            assert host.call("POST", "/vectors/dot", {"a": [1], "b": [2]}).status == 200
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert host.call("PUT", "/embeddings", item).status == 200  # and it recovers
        record_property(
            "happened",
            "SQLite write-locked by another process past SQL_BUSY_TIMEOUT_MS: 503 "
            "database_busy with Retry-After 2, vector math unaffected, the next write succeeds",
        )
    finally:
        stop_host(host)
