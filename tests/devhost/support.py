"""Start the local host as a subprocess on a real Azurite, and talk to it over real HTTP;
a proxy that loses one receive reply on the way."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from devhost.azurite import free_port
from devhost.launcher import Reply, http_call, launch

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FIXTURE_APP = HERE / "fixture_app" / "function_app.py"
PLAIN_APP = HERE / "fixture_app_plain" / "function_app.py"
FUNCTION_KEY = "testkey"
MASTER_KEY = "mastertestkey"


@dataclass
class HostProcess:
    """A running `python -m devhost` and the names it was given."""

    process: subprocess.Popen
    base_url: str
    log_path: Path
    record_dir: Path
    ns: str
    connection: str

    def call(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> Reply:
        return http_call(self.base_url + path, method, data, headers, timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def records(self, kind: str) -> list[dict]:
        path = self.record_dir / f"{kind}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def queue(self, name: str) -> QueueClient:
        """A client for `<ns>-<name>` (or an absolute name starting with '/')."""
        full = name[1:] if name.startswith("/") else f"{self.ns}-{name}"
        return QueueClient.from_connection_string(self.connection, full)

    def blobs(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(self.connection)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll until predicate() is truthy; its value, or AssertionError after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def start_host(
    script: Path,
    connection: str,
    tmp: Path,
    extra_env: dict[str, str] | None = None,
    route_prefix: str = "/api",
) -> HostProcess:
    """Start the host on a free port and wait for "Host started"."""
    port = free_port()
    ns = "dh" + uuid.uuid4().hex[:10]
    record_dir = tmp / "records"
    record_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AzureWebJobsStorage": connection,
        "LOCAL_FUNCTION_KEYS": FUNCTION_KEY,
        "LOCAL_MASTER_KEY": MASTER_KEY,
        "DEVHOST_NS": ns,
        "DEVHOST_RECORD_DIR": str(record_dir),
        "LOCAL_BLOB_SCAN_INTERVAL_SECONDS": "0.2",
        **(extra_env or {}),
    }
    launched = launch(
        script,
        env=env,
        cwd=ROOT,
        log_path=tmp / "host.log",
        port=port,
        route_prefix=route_prefix,
        timeout=30,
    )
    return HostProcess(
        launched.process, launched.base_url, launched.log_path, record_dir, ns, connection
    )


def stop_host(host: HostProcess, timeout: float = 30) -> int:
    """SIGTERM and wait; the exit code (kills it if it hangs)."""
    if host.process.poll() is None:
        host.process.send_signal(signal.SIGTERM)
        try:
            host.process.wait(timeout)
        except subprocess.TimeoutExpired:
            host.process.kill()
            host.process.wait()
    return host.process.returncode


class ReplyDroppingProxy:
    """A TCP proxy (to Azurite's queue port, or to another proxy) that, once armed, drops
    the first reply carrying queue messages and resets that connection: storage has
    leased the messages, the host never hears of them, as when a connection is cut just
    after storage answered. `arm(then)` calls `then()` at that moment (to start an outage
    there)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._armed = threading.Event()
        self._then: Callable[[], Any] | None = None
        self.dropped = threading.Event()
        self.dropped_at = 0.0  # monotonic
        self.dropped_messages = 0  # how many the lost reply carried
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, then: Callable[[], Any] | None = None) -> None:
        self._then = then
        self._armed.set()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            for a, b, replies in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, replies), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        try:
            while data := source.recv(65536):
                if replies and self._armed.is_set() and b"<QueueMessage>" in data:
                    self._armed.clear()
                    self.dropped_at = time.monotonic()
                    self.dropped_messages = data.count(b"<QueueMessage>")
                    if self._then is not None:
                        self._then()
                    self.dropped.set()
                    break
                sink.sendall(data)
        except OSError:
            pass
        _reset(source)
        _reset(sink)


def _reset(sock: socket.socket) -> None:
    """End a connection at once (RST), even while another thread is reading it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
