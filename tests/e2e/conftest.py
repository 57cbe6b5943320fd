"""The real function_app.py served by the local host, on Azurite and a SQLite file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueServiceClient

from devhost import azurite as azurite_mod
from devhost.launcher import LaunchedHost, Reply, launch_app
from tests.e2e.failures import FailureWatch

#: Every host log of the session, read at its end for secrets (tests/conftest.py).
HOST_LOGS: list[Path] = []

KEY = "e2e-function-key"
MASTER_KEY = "e2e-master-key"


@dataclass
class AppHost:
    host: LaunchedHost
    key: str
    env: dict[str, str]
    watch: FailureWatch

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
    tmp: Path,
    storage_connection: str | None,
    extra_env: dict[str, str] | None = None,
    *,
    watch_queues: QueueServiceClient | None = None,
) -> AppHost:
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
    host = launch_app(tmp, storage_connection, key=KEY, extra_env=env)
    HOST_LOGS.append(host.log_path)
    watch.read_log = host.log
    storage = {} if storage_connection is None else {"AzureWebJobsStorage": storage_connection}
    return AppHost(host, KEY, {**os.environ, **storage, **env}, watch)


def stop_host(app: AppHost, *, check: bool = True) -> None:
    """Stop the host (in-flight invocations finish), then fail on anything unexpected."""
    app.host.stop()
    if check:
        problems = app.watch.unexpected() + app.watch.missing()
        assert not problems, _report(app, problems)


def _report(app: AppHost, problems: list[str]) -> str:
    tail = "\n".join(app.log().splitlines()[-60:])
    return "the host did what no test expected:\n  " + "\n  ".join(problems) + "\n" + tail


@pytest.fixture(autouse=True)
def no_silent_failures(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test on the shared host: no failed invocation, no poison message that
    the test did not declare with `app_host.watch.expect(...)`."""
    yield
    if "app_host" in request.fixturenames:
        app: AppHost = request.getfixturevalue("app_host")
        problems = app.watch.unexpected()
        assert not problems, _report(app, problems)


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite_mod.Azurite]:
    """An Azurite per module here: each module's hosts start on an empty account. On one
    shared by the session, a blob that an earlier module's host left in `models` without
    a receipt (stopped before its next scan) fires in the next host on it, and which host
    that is depends on what ran before on the same worker."""
    with azurite_mod.running(tmp_path_factory.mktemp("azurite")) as instance:
        yield instance


@pytest.fixture(scope="module")
def app_host(azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppHost]:
    app = start_host(tmp_path_factory.mktemp("app"), azurite.connection_string)
    try:
        yield app
    finally:
        stop_host(app)
        if os.environ.get("SHOW_HOST_LOG"):
            print(app.log())
