"""Shared fixtures: a real Azurite per test session, a fresh SQLite database per test."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost import azurite as azurite_mod

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite_mod.Azurite]:
    """One Azurite on free loopback ports for the whole session."""
    location = tmp_path_factory.mktemp("azurite")
    instance = azurite_mod.start(location, log_file=location / "azurite.log")
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def storage_connection(azurite: azurite_mod.Azurite) -> str:
    return azurite.connection_string


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove the app's settings from the environment so defaults apply."""
    from shared.config import SETTINGS

    for setting in SETTINGS:
        monkeypatch.delenv(setting.key, raising=False)
    return monkeypatch


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
    from tests.e2e.conftest import HOST_LOGS, KEY, MASTER_KEY

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
