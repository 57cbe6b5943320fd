"""Keyless storage for real: Azurite over HTTPS with OAuth, a managed identity endpoint
on loopback, and the app's settings pointing at them with no key anywhere."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from devhost import azurite as azurite_mod
from tests.identity.support import IdentityEndpoint, make_certificate

CLIENT_ID = "6f1c2a3b-0d4e-4f5a-9b8c-7d6e5f4a3b2c"  # the app's user-assigned identity


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


def keyless_env(
    azurite: azurite_mod.Azurite, endpoint: IdentityEndpoint, cert: Path
) -> dict[str, str]:
    """What an Azure deployment with shared-key access off sets (plus the test CA)."""
    return {
        "AzureWebJobsStorage__blobServiceUri": azurite.blob_uri,
        "AzureWebJobsStorage__queueServiceUri": azurite.queue_uri,
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": CLIENT_ID,
        "REQUESTS_CA_BUNDLE": str(cert),
        **endpoint.env(),
    }


def clear_service_caches() -> None:
    """Forget every service a module of `shared` built and cached (and the settings)."""
    for name, module in list(sys.modules.items()):
        if name == "shared" or name.startswith("shared."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


class AppServices(SimpleNamespace):
    """The app's services as the routes reach them, for tests that call them directly."""


def app_services() -> AppServices:
    from shared.db.app import database
    from shared.registry.service import model_registry
    from shared.settings import get_settings
    from shared.storage.clients import (
        blob_service,
        container,
        queue_service,
        storage_account,
    )

    return AppServices(
        database=database,
        storage_account=storage_account,
        blob_service=blob_service,
        queue_service=queue_service,
        model_store=lambda: container(get_settings().models_container),
        model_registry=model_registry,
    )


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
