"""The real function_app.py served by the local host, on Azurite and a SQLite file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.devhost.azurite import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-function-key"


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class AppHost:
    base_url: str
    key: str
    process: subprocess.Popen
    log_path: Path
    env: dict[str, str]

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
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if key is not None:
            req.add_header("x-functions-key", self.key if key == "default" else key)
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Reply(
                    resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()}
                )
        except urllib.error.HTTPError as err:
            return Reply(err.code, err.read(), {k.lower(): v for k, v in err.headers.items()})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_host(
    tmp: Path, storage_connection: str, extra_env: dict[str, str] | None = None
) -> AppHost:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AzureWebJobsStorage": storage_connection,
        "SQL_CONNECTION_STRING": f"sqlite:///{tmp / 'app.db'}",
        "DATA_DIR": str(tmp / "data"),
        "LOCAL_FUNCTION_KEYS": KEY,
        "LOCAL_BLOB_SCAN_INTERVAL_SECONDS": "0.3",
        **(extra_env or {}),
    }
    log_path = tmp / "host.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shared.devhost",
            "--script",
            str(ROOT / "function_app.py"),
            "--port",
            str(port),
        ],
        cwd=tmp,
        env=env,
        stdout=open(log_path, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    host = AppHost(f"http://127.0.0.1:{port}/api", KEY, proc, log_path, env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"local host exited early:\n{host.log()}")
        try:
            if host.call("GET", "/health", key=None, timeout=2).status == 200:
                return host
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError(f"local host did not answer /api/health in 60 s:\n{host.log()}")


def stop_host(host: AppHost) -> None:
    if host.process.poll() is None:
        host.process.send_signal(signal.SIGTERM)
        try:
            host.process.wait(30)
        except subprocess.TimeoutExpired:
            host.process.kill()
            host.process.wait()


@pytest.fixture(scope="module")
def app_host(azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppHost]:
    host = start_host(tmp_path_factory.mktemp("app"), azurite.connection_string)
    try:
        yield host
    finally:
        stop_host(host)
