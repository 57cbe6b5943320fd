"""The local host as the tests run it: one handle (`Host`) on `devhost.launcher`, for the
app (`start_app`: this repository's function_app.py on a fresh SQLite file, watched for
failures) and for the small fixture apps of the host's own tests (`start_fixture_app`).

The `app_host` fixture in tests/conftest.py is `start_app` shared by a module's tests.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient

from devhost.launcher import LaunchedHost, Reply, launch, launch_app
from shared.settings import ROOT
from tests.support.failures import FailureWatch

#: Every app host log of the session, read at its end for secrets (tests/conftest.py).
HOST_LOGS: list[Path] = []

#: The app's function key and master key in every app host the tests start.
KEY = "e2e-function-key"
MASTER_KEY = "e2e-master-key"

#: The fixture apps of tests/devhost/, their keys, and the body limit its shared host has.
FIXTURE_APP = ROOT / "tests" / "devhost" / "fixture_app" / "function_app.py"
PLAIN_APP = ROOT / "tests" / "devhost" / "fixture_app_plain" / "function_app.py"
FIXTURE_KEY = "testkey"
FIXTURE_MASTER_KEY = "mastertestkey"
FIXTURE_BODY_LIMIT = 4096


@dataclass
class Host:
    """A running `python -m devhost`.

    `key` is what `call` sends as `x-functions-key` unless told otherwise (None: nothing);
    `watch` reads the app's failures (None for fixture apps, whose tests fail functions on
    purpose); `ns` prefixes a fixture app's queue and container names."""

    launched: LaunchedHost
    key: str | None
    env: dict[str, str]
    watch: FailureWatch | None = None
    ns: str = ""
    record_dir: Path | None = None

    @property
    def base_url(self) -> str:
        return self.launched.base_url

    @property
    def process(self) -> subprocess.Popen:
        return self.launched.process

    @property
    def port(self) -> int:
        return self.launched.port

    @property
    def log_path(self) -> Path:
        return self.launched.log_path

    @property
    def connection(self) -> str:
        return self.env["AzureWebJobsStorage"]

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
        """`body` as JSON, or `raw` bytes; 4xx/5xx come back as a Reply."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = dict(headers or {})
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        chosen = self.key if key == "default" else key
        if chosen is not None:
            sent["x-functions-key"] = chosen
        return self.launched.call(method, path, data, sent, timeout)

    def log(self) -> str:
        return self.launched.log()

    def wait_for_log(self, line: str, timeout: float = 30) -> str:
        """The log once it holds `line`. The host writes its log from a listener thread,
        so a line about a call can land just after the call's reply."""

        def holding() -> str:
            text = self.log()
            return text if line in text else ""

        return wait_for(holding, timeout, what=f"{line!r} in the host log")

    def records(self, kind: str) -> list[dict]:
        """What a fixture app wrote to `<record_dir>/<kind>.jsonl`."""
        path = (self.record_dir or Path("/nonexistent")) / f"{kind}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def queue(self, name: str) -> QueueClient:
        """A client for `<ns>-<name>` (or an absolute name starting with '/')."""
        full = name[1:] if name.startswith("/") else f"{self.ns}-{name}"
        return QueueClient.from_connection_string(self.connection, full)

    def blobs(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(self.connection)


def start_app(
    tmp: Path,
    storage_connection: str | None,
    extra_env: dict[str, str] | None = None,
    *,
    watch_queues: QueueServiceClient | None = None,
) -> Host:
    """The app on a fresh SQLite file, watched for failures. `storage_connection=None`
    leaves AzureWebJobsStorage unset (identity-based settings in `extra_env`); then
    `watch_queues` is how the test itself reads the account's poison queues."""
    env = {
        "LOCAL_BLOB_SCAN_INTERVAL_SECONDS": "0.3",
        "LOCAL_MASTER_KEY": MASTER_KEY,
        **(extra_env or {}),
    }
    if watch_queues is None:
        assert storage_connection is not None
        watch_queues = QueueServiceClient.from_connection_string(storage_connection)
    watch = FailureWatch(watch_queues)  # the baseline is taken before the host starts
    launched = launch_app(tmp, storage_connection, key=KEY, extra_env=env)
    HOST_LOGS.append(launched.log_path)
    watch.read_log = launched.log
    storage = {} if storage_connection is None else {"AzureWebJobsStorage": storage_connection}
    return Host(launched, KEY, {**os.environ, **storage, **env}, watch)


def start_fixture_app(
    script: Path,
    connection: str,
    tmp: Path,
    extra_env: dict[str, str] | None = None,
    route_prefix: str = "/api",
) -> Host:
    """A fixture app on a free port, its queues and containers under a fresh prefix."""
    ns = "dh" + uuid.uuid4().hex[:10]
    record_dir = tmp / "records"
    record_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AzureWebJobsStorage": connection,
        "LOCAL_FUNCTION_KEYS": FIXTURE_KEY,
        "LOCAL_MASTER_KEY": FIXTURE_MASTER_KEY,
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
        route_prefix=route_prefix,
        timeout=30,
    )
    return Host(launched, None, env, None, ns, record_dir)


def stop_host(host: Host, *, check: bool = True) -> int:
    """SIGTERM (in-flight invocations finish); then, for a watched app and unless told
    not to, fail on anything unexpected. The exit code."""
    code = host.launched.stop()
    if check and host.watch is not None:
        problems = host.watch.unexpected() + host.watch.missing()
        assert not problems, failure_report(host, problems)
    return code


@contextmanager
def running_app(
    tmp: Path, storage_connection: str | None, extra_env: dict[str, str] | None = None, **kw: Any
) -> Iterator[Host]:
    """`start_app` for a `with` block: stopped (and checked) at its end; SHOW_HOST_LOG=1
    prints the host's log."""
    app = start_app(tmp, storage_connection, extra_env, **kw)
    try:
        yield app
    finally:
        stop_host(app)
        if os.environ.get("SHOW_HOST_LOG"):
            print(app.log())


def failure_report(host: Host, problems: list[str]) -> str:
    tail = "\n".join(host.log().splitlines()[-60:])
    return "the host did what no test expected:\n  " + "\n  ".join(problems) + "\n" + tail


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


def wait_for_job(host: Host, job_id: str, timeout: float = 60) -> dict:
    """The job once it has succeeded or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = host.call("GET", f"/jobs/{job_id}")
        if reply.status == 200 and reply.json()["status"] in ("succeeded", "failed"):
            return reply.json()
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {host.call('GET', f'/jobs/{job_id}').body}")


def wait_for_model(host: Host, name: str, timeout: float = 90) -> dict:
    """The newest version of model `name` once it is ready or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        models = host.call("GET", f"/models?name={name}").json()["models"]
        if models and models[0]["status"] in ("ready", "failed"):
            return models[0]
        time.sleep(0.2)
    raise AssertionError(f"model {name} did not settle: {host.call('GET', '/models').body[:500]}")


def upload_blob(host: Host, blob_name: str, data: bytes, container: str = "models") -> None:
    """Put a blob in the host's storage account, as an upload outside the app does."""
    service = BlobServiceClient.from_connection_string(host.env["AzureWebJobsStorage"])
    service.get_blob_client(container, blob_name).upload_blob(data, overwrite=True)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def register_minilm(host: Host, name: str = "minilm") -> str:
    """MiniLM and its tokenizer uploaded to the host's models container as `name`; the
    name once the version is ready (the MiniLM data packages must be installed)."""
    from tests.support.pretrained import find_minilm

    found = find_minilm()
    assert found is not None, "the MiniLM data packages are not installed"
    model_path, tokenizer_path = found
    upload_blob(host, f"{name}.tokenizer.json", tokenizer_path.read_bytes())
    upload_blob(host, f"{name}.onnx", model_path.read_bytes())
    model = wait_for_model(host, name, timeout=180)
    assert model["status"] == "ready", model
    return name
