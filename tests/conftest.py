"""Shared fixtures: a real Azurite per test session, a fresh SQLite database per test."""

from __future__ import annotations

import os
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


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYTHONHASHSEED", "0")
