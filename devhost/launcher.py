"""Run the local host as a child process and call it over HTTP: for tests and benchmarks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.azurite import free_port


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]  # names in lower case

    def json(self) -> Any:
        return json.loads(self.body)


def http_call(
    url: str,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Reply:
    """One request with urllib; 4xx/5xx come back as a Reply, not an exception."""
    request = urllib.request.Request(url, data=data, method=method)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Reply(resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()})
    except urllib.error.HTTPError as err:
        return Reply(err.code, err.read(), {k.lower(): v for k, v in err.headers.items()})


@dataclass
class LaunchedHost:
    process: subprocess.Popen
    port: int
    base_url: str  # with the route prefix
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def call(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Reply:
        return http_call(self.base_url + path, method, data, headers, timeout)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as Azure and Ctrl-C do; kill only if it hangs. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def launch(
    script: Path,
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    port: int | None = None,
    route_prefix: str = "/api",
    timeout: float = 60,
) -> LaunchedHost:
    """Start `python -m devhost` and wait for its "Host started" line.

    A free port can be taken by another process before the host binds it (parallel test
    workers start several hosts at once): on a port chosen here, a host that exits
    because its address is in use starts again on another (three tries in all)."""
    tries = 1 if port else 3
    for attempt in range(1, tries + 1):
        try:
            return _launch(script, env, cwd, log_path, port or free_port(), route_prefix, timeout)
        except _AddressInUse:
            if attempt == tries:
                raise
    raise AssertionError("unreachable")


class _AddressInUse(RuntimeError):
    pass


def _launch(
    script: Path,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    port: int,
    route_prefix: str,
    timeout: float,
) -> LaunchedHost:
    command = [sys.executable, "-m", "devhost", "--script", str(script)]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=open(log_path, "wb"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    host = LaunchedHost(process, port, f"http://127.0.0.1:{port}{route_prefix}", log_path)
    deadline = time.monotonic() + timeout
    while "Host started" not in host.log():
        if process.poll() is not None:
            log = host.log()
            kind = _AddressInUse if "address already in use" in log.lower() else RuntimeError
            raise kind(f"the host exited with {process.returncode}:\n{log}")
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"the host did not start in {timeout} s:\n{host.log()}")
        time.sleep(0.05)
    return host


def launch_app(
    tmp: Path,
    storage_connection: str | None,
    *,
    key: str,
    sql_connection: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> LaunchedHost:
    """This repository's function_app.py on the given storage, with its SQLite file and
    data folder under `tmp`: what the end-to-end tests and the benchmarks run.

    `storage_connection=None` leaves AzureWebJobsStorage unset (identity-based settings
    in `extra_env` then name the account)."""
    import os

    root = Path(__file__).resolve().parents[1]
    inherited = {k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"}
    storage = {} if storage_connection is None else {"AzureWebJobsStorage": storage_connection}
    env = {
        **inherited,
        "PYTHONPATH": str(root),
        **storage,
        "SQL_CONNECTION_STRING": sql_connection or f"sqlite:///{tmp / 'app.db'}",
        "DATA_DIR": str(tmp / "data"),
        "LOCAL_FUNCTION_KEYS": key,
        **(extra_env or {}),
    }
    return launch(root / "function_app.py", env=env, cwd=tmp, log_path=tmp / "host.log")
