"""Start and stop Azurite (the local Azure Storage emulator) for `make run` and the tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Azurite's well-known development account. Public by design, documented by Microsoft:
# it only opens the local emulator, never a real storage account.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _listens_on(proc: subprocess.Popen, ports: list[int]) -> bool:
    """True once `proc` itself listens on every port: a port that answers may be another
    process's that took it first (then this Azurite exits, and `start` tries again)."""
    if not all(port_open(p) for p in ports):
        return False
    try:
        import psutil

        process = psutil.Process(proc.pid)
        sockets = process.net_connections("tcp")
    except Exception:  # no psutil, or the process is gone: the poll above tells
        return proc.poll() is None
    listening = {s.laddr.port for s in sockets if s.status == psutil.CONN_LISTEN}
    return set(ports) <= listening


def connection_string(
    blob_port: int, queue_port: int, table_port: int, scheme: str = "http"
) -> str:
    base = f"{scheme}://127.0.0.1"
    return (
        f"DefaultEndpointsProtocol={scheme};AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint={base}:{blob_port}/{DEV_ACCOUNT};"
        f"QueueEndpoint={base}:{queue_port}/{DEV_ACCOUNT};"
        f"TableEndpoint={base}:{table_port}/{DEV_ACCOUNT};"
    )


def find_executable() -> str:
    """The project's own Azurite (installed by `make setup`), else one on PATH."""
    local = ROOT / ".tools" / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise FileNotFoundError("Azurite is not installed: run `make setup` (it installs it with npm)")


@dataclass
class Azurite:
    """A running Azurite process on loopback."""

    process: subprocess.Popen
    blob_port: int
    queue_port: int
    table_port: int
    location: Path
    https: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port, self.scheme)

    @property
    def blob_uri(self) -> str:
        """The blob service URI (what `AzureWebJobsStorage__blobServiceUri` takes)."""
        return f"{self.scheme}://127.0.0.1:{self.blob_port}/{DEV_ACCOUNT}"

    @property
    def queue_uri(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.queue_port}/{DEV_ACCOUNT}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    location: Path,
    *,
    blob_port: int | None = None,
    queue_port: int | None = None,
    table_port: int | None = None,
    timeout: float = 30.0,
    log_file: Path | None = None,
    oauth_tls: tuple[Path, Path] | None = None,
) -> Azurite:
    """Start Azurite with its data under `location`; ports default to free ones.

    `oauth_tls=(cert.pem, key.pem)` serves HTTPS with that certificate and accepts OAuth
    bearer tokens (`--oauth basic`: Azurite checks issuer, audience and lifetime, not the
    signature), so the keyless, identity-based code paths run against it.

    A free port can be taken by another process between `free_port()` and Azurite's bind
    (parallel test workers start several at once): when Azurite exits at start on ports it
    was not given, it starts again on other free ones (three tries in all).
    """
    given = (blob_port, queue_port, table_port)
    tries = 1 if all(given) else 3
    for attempt in range(1, tries + 1):
        try:
            return _start(location, given, timeout, log_file, oauth_tls)
        except _ExitedAtStart:
            if attempt == tries:
                raise
    raise AssertionError("unreachable")


class _ExitedAtStart(RuntimeError):
    pass


def _start(
    location: Path,
    given: tuple[int | None, int | None, int | None],
    timeout: float,
    log_file: Path | None,
    oauth_tls: tuple[Path, Path] | None,
) -> Azurite:
    location.mkdir(parents=True, exist_ok=True)
    ports = [p or free_port() for p in given]
    cmd = [
        find_executable(),
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        "--location",
        str(location),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(ports[0]),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(ports[1]),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(ports[2]),
    ]
    if oauth_tls is not None:
        cert, key = oauth_tls
        cmd += ["--oauth", "basic", "--cert", str(cert), "--key", str(key)]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=os.environ.copy()
    )
    azurite = Azurite(proc, ports[0], ports[1], ports[2], location, oauth_tls is not None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _ExitedAtStart(f"Azurite exited with code {proc.returncode}; command: {cmd}")
        if _listens_on(proc, ports):
            return azurite
        time.sleep(0.05)
    azurite.stop()
    raise TimeoutError(f"Azurite did not open ports {ports} within {timeout} s")


@contextlib.contextmanager
def running(location: Path) -> Iterator[Azurite]:
    """Azurite on free loopback ports with its data and log in ``location``, stopped when
    the block ends."""
    instance = start(location, log_file=location / "azurite.log")
    try:
        yield instance
    finally:
        instance.stop()
