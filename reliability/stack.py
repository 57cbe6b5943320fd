"""Azurite and the real app on the local host, fresh for one run (its own SQLite file)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost import azurite as azurite_mod
from devhost.launcher import LaunchedHost, Reply, launch_app

KEY = "reliability-key"


@dataclass
class Stack:
    tmp: Path
    storage: azurite_mod.Azurite
    host: LaunchedHost

    @property
    def key(self) -> str:
        return KEY

    @property
    def db_path(self) -> Path:
        return db_path(self.tmp)

    @property
    def connection_string(self) -> str:
        return self.storage.connection_string

    @property
    def origin(self) -> str:
        """Scheme, host and port: what locust's `--host` takes (routes carry `/api`)."""
        return f"http://127.0.0.1:{self.host.port}"

    @property
    def pid(self) -> int:
        return self.host.process.pid

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Reply:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"x-functions-key": KEY, "Content-Type": "application/json"}
        return self.host.call(method, path, data, headers, timeout=120)


def db_path(tmp: Path) -> Path:
    return tmp / "reliability.db"


@contextmanager
def running_stack(tmp: Path, *, search_cache_bytes: int) -> Iterator[Stack]:
    """Start Azurite, then the host on `tmp/reliability.db` (seed it before, if needed);
    both stop on exit whatever happened."""
    storage = azurite_mod.start(tmp / "azurite", log_file=tmp / "azurite.log")
    try:
        host = launch_app(
            tmp,
            storage.connection_string,
            key=KEY,
            sql_connection=f"sqlite:///{db_path(tmp)}",
            extra_env={
                "SEARCH_CACHE_BYTES": str(search_cache_bytes),
                "LOCAL_BLOB_SCAN_INTERVAL_SECONDS": "0.5",
            },
        )
        try:
            yield Stack(tmp, storage, host)
        finally:
            host.stop(60)
    finally:
        storage.stop()
