"""The real function_app.py served by the local host, on Azurite and a SQLite file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devhost.launcher import LaunchedHost, Reply, launch_app

KEY = "e2e-function-key"


@dataclass
class AppHost:
    host: LaunchedHost
    key: str
    env: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.host.base_url

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = "default",
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Reply:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = dict(headers or {})
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        if key is not None:
            sent["x-functions-key"] = self.key if key == "default" else key
        return self.host.call(method, path, data, sent, timeout)

    def log(self) -> str:
        return self.host.log()


def start_host(
    tmp: Path, storage_connection: str, extra_env: dict[str, str] | None = None
) -> AppHost:
    env = {"LOCAL_BLOB_SCAN_INTERVAL_SECONDS": "0.3", **(extra_env or {})}
    host = launch_app(tmp, storage_connection, key=KEY, extra_env=env)
    return AppHost(host, KEY, {**os.environ, "AzureWebJobsStorage": storage_connection, **env})


def stop_host(app: AppHost) -> None:
    app.host.stop()


@pytest.fixture(scope="module")
def app_host(azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppHost]:
    app = start_host(tmp_path_factory.mktemp("app"), azurite.connection_string)
    try:
        yield app
    finally:
        stop_host(app)
        if os.environ.get("SHOW_HOST_LOG"):
            print(app.log())
