"""Readiness against real parts: Azurite and SQLite, each part broken, and a part that
accepts connections and never answers (the answer still comes by the deadline)."""

import socket
import time
from pathlib import Path

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from devhost.azurite import connection_string, free_port
from shared.db.connection import open_database
from shared.health.readiness import FAILED, NOT_CONFIGURED, OK, TIMED_OUT, Readiness, readiness
from shared.settings import ConfigError
from shared.storage.clients import PROBE_CLIENT_OPTIONS


def test_all_parts_answer(storage_connection: str, sqlite_url: str) -> None:
    checks = readiness(
        lambda: open_database(sqlite_url),
        lambda: BlobServiceClient.from_connection_string(storage_connection),
        lambda: QueueServiceClient.from_connection_string(storage_connection),
    )
    assert [(c.part, c.state) for c in checks] == [
        ("sql", OK),
        ("blob_storage", OK),
        ("queue_storage", OK),
    ]


def test_each_failed_part_is_named_with_its_reason(tmp_path: Path) -> None:
    dead = free_port()
    conn = connection_string(dead, dead, dead)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")

    def broken_db():
        return open_database(f"sqlite:///{blocker}/sub/db.sqlite")

    checks = {
        c.part: c
        for c in readiness(
            broken_db,
            lambda: BlobServiceClient.from_connection_string(conn, **PROBE_CLIENT_OPTIONS),
            lambda: QueueServiceClient.from_connection_string(conn, **PROBE_CLIENT_OPTIONS),
        )
    }
    assert checks["sql"].state == FAILED and "Error" in checks["sql"].detail
    assert checks["blob_storage"].state == FAILED and checks["queue_storage"].state == FAILED
    assert "onnect" in checks["blob_storage"].detail  # a connection error, said as such
    # What an anonymous caller reads: the state only, never the host or the message.
    assert checks["blob_storage"].public == "failed"
    assert "127.0.0.1" in checks["blob_storage"].detail
    assert "127.0.0.1" not in checks["blob_storage"].public


def test_a_missing_setting_is_named_even_to_anonymous_callers() -> None:
    def unset():
        raise ConfigError("SQL_CONNECTION_STRING", "is required in Azure and not set")

    (check,) = Readiness({"sql": unset}).check()
    assert check.state == NOT_CONFIGURED
    assert check.public == "not configured: SQL_CONNECTION_STRING"


def test_a_part_that_never_answers_is_reported_by_the_deadline() -> None:
    """Storage that accepts the connection and then says nothing: the SDK alone would
    wait out its read timeout and retries; readiness answers at its deadline, and a
    second probe while the first still hangs does not start another one."""
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    conn = connection_string(port, port, port)
    calls = []

    def hanging_blob_listing():
        calls.append(1)
        client = BlobServiceClient.from_connection_string(conn, connection_timeout=30)
        next(iter(client.list_containers(read_timeout=30)), None)

    try:
        prober = Readiness({"blob_storage": hanging_blob_listing, "sql": lambda: 1}, timeout=0.5)
        started = time.monotonic()
        checks = {c.part: c for c in prober.check()}
        first = time.monotonic() - started
        assert checks["blob_storage"].state == TIMED_OUT and checks["sql"].state == OK
        assert first < 10  # the listing alone would wait 30 s per try, with retries
        again = {c.part: c for c in prober.check()}
        assert again["blob_storage"].state == TIMED_OUT and len(calls) == 1
        assert "earlier probe" in again["blob_storage"].detail
    finally:
        silent.close()
