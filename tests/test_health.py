"""Readiness against real parts: Azurite and SQLite, and with each part broken."""

from pathlib import Path

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from devhost.azurite import connection_string, free_port
from shared.db.connection import open_database
from shared.health import readiness


def test_all_parts_answer(storage_connection: str, sqlite_url: str) -> None:
    checks = readiness(
        lambda: open_database(sqlite_url),
        lambda: BlobServiceClient.from_connection_string(storage_connection),
        lambda: QueueServiceClient.from_connection_string(storage_connection),
    )
    assert [(c.part, c.ok) for c in checks] == [
        ("sql", True),
        ("blob_storage", True),
        ("queue_storage", True),
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
            lambda: BlobServiceClient.from_connection_string(conn, retry_total=0),
            lambda: QueueServiceClient.from_connection_string(conn, retry_total=0),
        )
    }
    assert not checks["sql"].ok and "Error" in checks["sql"].detail
    assert not checks["blob_storage"].ok and not checks["queue_storage"].ok
    assert "onnect" in checks["blob_storage"].detail  # a connection error, said as such
