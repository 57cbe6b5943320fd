"""The fixtures that several folders of tests use, and how the suite runs in parallel.

Real parts only: an Azurite per test session (and one for the app's hosts, emptied for
each module), a fresh migrated SQLite database per test, the app on the local host. Code that
tests share as a library lives in tests/support/, never in a conftest.

`make test` runs the suite in parallel with pytest-xdist (`--dist loadgroup`). Each
worker is a session of its own: its own Azurite on free ports, its own hosts, temp
folders (`tmp_path_factory` is per worker) and environment. Tests that share a host or
another fixture wider than one test stay on one worker (`_group`, and the scheduler in
`pytest_xdist_make_scheduler`), and the longest start first (`START_FIRST`).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

import function_app  # noqa: F401 - the composition root: registers the job kinds' payloads and handlers
from devhost import azurite as azurite_mod
from shared.db.connection import Database
from shared.embeddings.repository import EmbeddingRepository
from shared.embeddings.service import EmbeddingStore, Limits
from shared.jobs.repository import JobRepository
from shared.jobs.submit import JobQueue
from shared.registry.repository import ModelRepository
from shared.storage.blob_store import BlobModelStore
from tests.support.db import migrated
from tests.support.host import (
    HOST_LOGS,
    KEY,
    MASTER_KEY,
    Host,
    failure_report,
    running_app,
)
from tests.support.inference import Harness, build_harness


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite_mod.Azurite]:
    """One Azurite on free loopback ports for the whole session."""
    with azurite_mod.running(tmp_path_factory.mktemp("azurite")) as instance:
        yield instance


@pytest.fixture
def storage_connection(azurite: azurite_mod.Azurite) -> str:
    return azurite.connection_string


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove the app's settings from the environment so defaults apply."""
    from shared.settings import SETTINGS

    for setting in SETTINGS:
        monkeypatch.delenv(setting.key, raising=False)
    return monkeypatch


@pytest.fixture
def rng() -> np.random.Generator:
    """The same random numbers in every run."""
    return np.random.default_rng(20240607)


# -- a migrated database, and the app's repositories on it --------------------------------
@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh SQLite file migrated to the app's schema, through sqlite3; through pyodbc
    too where the test is marked `BOTH_DRIVERS` (tests/support/db.py)."""
    database = migrated(tmp_path / "test.db", getattr(request, "param", "sqlite3"))
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def repos(db: Database) -> tuple[JobRepository, ModelRepository, EmbeddingRepository]:
    return JobRepository(db), ModelRepository(db), EmbeddingRepository(db)


@pytest.fixture
def store(repos) -> EmbeddingStore:
    return EmbeddingStore(repos[2], Limits(max_dim=4096, max_rows=100_000))


@pytest.fixture
def harness(db: Database, tmp_path: Path) -> Harness:
    """InferenceService on the database, real sessions, local files for the blobs."""
    return build_harness(db, tmp_path)


# -- storage on the session's Azurite --------------------------------------------------------
@pytest.fixture
def blob_service(storage_connection: str) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(storage_connection)


@pytest.fixture
def container(blob_service: BlobServiceClient) -> BlobModelStore:
    """A fresh container."""
    s = BlobModelStore(blob_service, f"t-{uuid.uuid4().hex[:12]}")
    s.ensure_container()
    return s


@pytest.fixture
def queue(storage_connection: str) -> JobQueue:
    """A fresh ingestion queue."""
    q = JobQueue(
        QueueServiceClient.from_connection_string(storage_connection), f"q-{uuid.uuid4().hex[:10]}"
    )
    q.ensure()
    return q


# -- the app on the local host ----------------------------------------------------------------
@pytest.fixture(scope="session")
def app_azurite_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite_mod.Azurite]:
    """The Azurite the app's hosts run on, one per worker (`app_azurite` empties it for
    each module)."""
    with azurite_mod.running(tmp_path_factory.mktemp("azurite-app")) as instance:
        yield instance


@pytest.fixture(scope="module")
def app_azurite(app_azurite_process: azurite_mod.Azurite) -> azurite_mod.Azurite:
    """The app's Azurite, emptied first: each module's hosts start on an empty account.
    With what earlier modules left there, a blob that a host left in `models` without a
    receipt (stopped before its next scan) fires in the next host on it, and which host
    that is depends on what ran before on the same worker. Emptying costs milliseconds;
    an Azurite of its own costs each module two seconds of CPU."""
    connection = app_azurite_process.connection_string
    blobs = BlobServiceClient.from_connection_string(connection)
    for container in blobs.list_containers():
        blobs.delete_container(container.name)
    queues = QueueServiceClient.from_connection_string(connection)
    for queue in queues.list_queues():
        queues.delete_queue(queue.name)
    assert not list(blobs.list_containers()) and not list(queues.list_queues())
    return app_azurite_process


@pytest.fixture(scope="module")
def app_storage(app_azurite: azurite_mod.Azurite) -> str:
    """The connection string of that Azurite, for tests that start their own app hosts."""
    return app_azurite.connection_string


@pytest.fixture(scope="module")
def app_host(app_azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    """The app on the local host with the embedded defaults, shared by a module's tests
    (so they stay on one xdist worker), stopped and checked for failures at its end."""
    with running_app(tmp_path_factory.mktemp("app"), app_azurite.connection_string) as app:
        yield app


@pytest.fixture(autouse=True)
def no_silent_failures(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test on the shared app host: no failed invocation, no poison message
    that the test did not declare with `app_host.watch.expect(...)` (tests/support/failures.py)."""
    yield
    if "app_host" in request.fixturenames:
        app: Host = request.getfixturevalue("app_host")
        assert app.watch is not None
        problems = app.watch.unexpected()
        assert not problems, failure_report(app, problems)


# What must never reach a log line: keys, account keys, SAS signatures, bearer tokens.
SECRET_PATTERNS = (
    re.compile(r"AccountKey=[^;\s]+"),
    re.compile(r"[?&]sig=[A-Za-z0-9%+/=]{10,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    re.compile(r"[?&]code=[^&\s]+"),
)


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_host_log() -> Iterator[None]:
    """After the whole session: no host log holds a key, an account key, a SAS signature
    or a token (every host the e2e tests started, whatever they did to it)."""
    yield
    from devhost.azurite import DEV_KEY

    for path in HOST_LOGS:
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        for secret in (KEY, MASTER_KEY, DEV_KEY):
            assert secret not in text, f"{path}: a key is in the log"
        for pattern in SECRET_PATTERNS:
            found = pattern.search(text)
            assert found is None, f"{path}: {found.group(0)[:12]}... is in the log"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYTHONHASHSEED", "0")


#: The files whose tests take longest (measured with --durations: mostly waiting on
#: outages, leases and hosts, little CPU). Under xdist they start first, so that no
#: worker is left running one of them alone at the end of the run.
START_FIRST = (
    "tests/reliability/test_faults_",
    "tests/devhost/test_queue_lease.py",
    "tests/http/test_app_openapi.py",
    "tests/identity/test_keyless_host.py",
    "tests/load/test_reliability_runner.py",
    "tests/infra/",
    "tests/test_package.py",
)
_WIDER = ("package", "module", "class")


def _group(item: pytest.Item) -> str | None:
    """The tests that must run on one worker with this one: its `xdist_group` mark, else
    where the widest fixture it uses lives if that is wider than one test (a module's
    host, a package's Azurite over TLS): spread over workers, each would start its own.
    Session fixtures are per worker anyway."""
    for mark in item.iter_markers("xdist_group"):
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    info = getattr(item, "_fixtureinfo", None)
    used = [info.name2fixturedefs.get(name) for name in item.fixturenames] if info else []
    wide = [defs[-1] for defs in used if defs and defs[-1].scope in _WIDER]
    if not wide:
        return None
    widest = min(wide, key=lambda fixturedef: _WIDER.index(fixturedef.scope))
    module, _, rest = item.nodeid.partition("::")
    if widest.scope == "package":
        return widest.baseid or module.rpartition("/")[0]
    if widest.scope == "class" and "::" in rest:
        return f"{module}::{rest.split('::')[0]}"
    return module


def _groups_file(basetemp: Path, worker: str) -> Path:
    return basetemp / f"xdist-groups-{worker}.json"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker: the longest first, and the groups written for the scheduler."""
    worker = getattr(config, "workerinput", None)
    if worker is None:
        return
    items.sort(key=lambda item: not item.nodeid.startswith(START_FIRST))  # stable
    groups = {item.nodeid: group for item in items if (group := _group(item)) is not None}
    # xdist gives each worker <the run's basetemp>/<worker id> as its own basetemp.
    run_dir = Path(config.option.basetemp).parent
    _groups_file(run_dir, worker["workerid"]).write_text(json.dumps(groups))


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown when xdist is not loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup`, with the groups that the workers found (`_group`).

    pytest-xdist sends a test's group from worker to scheduler by appending it to the test's
    node id, which pytest 9.2 and later do not let a plugin change: the groups are silently lost
    (pytest-xdist issue #1386). The workers write them to a file instead, read here once
    every worker has collected. A test with no group is a unit of its own."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedFixtureScheduling(LoadGroupScheduling):
        groups: dict[str, str]

        def schedule(self) -> None:
            if self.collection is None:  # the first call: every worker has collected
                self.groups = {}
                run_dir = config._tmp_path_factory.getbasetemp()  # the workers' parent
                for node in self.nodes:
                    found = _groups_file(run_dir, node.gateway.id)
                    if found.exists():
                        self.groups.update(json.loads(found.read_text()))
            super().schedule()

        def _split_scope(self, nodeid: str) -> str:
            group = self.groups.get(nodeid)  # None: a unit of its own, or xdist's own group
            return f"group:{group}" if group is not None else super()._split_scope(nodeid)

    return SharedFixtureScheduling(config, log)
