"""Keyless storage for real: Azurite over HTTPS with OAuth, a managed identity endpoint
on loopback, and the app's settings pointing at them with no key anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost import azurite as azurite_mod
from tests.identity.support import (
    CLIENT_ID,
    IdentityEndpoint,
    app_services,
    clear_service_caches,
    keyless_env,
    make_certificate,
)


@pytest.fixture(scope="package")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="package")
def oauth_azurite(
    tmp_path_factory: pytest.TempPathFactory, tls: tuple[Path, Path]
) -> Iterator[azurite_mod.Azurite]:
    location = tmp_path_factory.mktemp("azurite-oauth")
    instance = azurite_mod.start(location, log_file=location / "azurite.log", oauth_tls=tls)
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="package")
def identity_endpoint() -> Iterator[IdentityEndpoint]:
    endpoint = IdentityEndpoint({CLIENT_ID}).start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def keyless_services(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    oauth_azurite: azurite_mod.Azurite,
    identity_endpoint: IdentityEndpoint,
    tls: tuple[Path, Path],
):
    """The app's services built from identity-based settings only (fresh per test)."""
    services = app_services()

    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    for key, value in keyless_env(oauth_azurite, identity_endpoint, tls[0]).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SQL_CONNECTION_STRING", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    clear_service_caches()
    try:
        yield services
    finally:
        try:
            if services.database.cache_info().currsize:
                services.database().close()
        finally:
            clear_service_caches()
