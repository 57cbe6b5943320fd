"""Where the resolver is used besides services: the local host's binding connections, a
DefaultAzureCredential without `__credential`, and resolution that imports no identity."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devhost.storage_clients import StorageNotConfigured, resolve_connection
from shared.settings import ROOT, ConfigError
from shared.storage.accounts import blob_service_client, resolve_account
from tests.identity.support import CLIENT_ID, keyless_env


def test_local_host_resolves_binding_connections_through_the_shared_rules() -> None:
    env = {"AzureWebJobsStorage__accountName": "hartostore01"}
    account = resolve_connection(None, env)
    assert account.keyless and account.blob_uri == "https://hartostore01.blob.core.windows.net"
    assert resolve_connection("AzureWebJobsStorage", env) == account
    with pytest.raises(StorageNotConfigured, match="__accountName"):
        resolve_connection("OtherStorage", env)
    with pytest.raises(ConfigError, match="__credential"):
        resolve_connection(None, {**env, "AzureWebJobsStorage__credential": "sas"})


def test_default_azure_credential_without_credential_setting(
    oauth_azurite, identity_endpoint, tls, monkeypatch
) -> None:
    """No `__credential`: DefaultAzureCredential, which in App Service finds the managed
    identity (and passes `__clientId` on as its managed identity client id)."""
    from azure.identity import DefaultAzureCredential

    for key, value in keyless_env(oauth_azurite, identity_endpoint, tls[0]).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AzureWebJobsStorage__credential")
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    client = blob_service_client(resolve_account())
    assert isinstance(client.credential, DefaultAzureCredential)
    before = len(identity_endpoint.requests)
    client.create_container("dac-check")
    assert client.get_container_client("dac-check").exists()
    assert [q["client_id"] for q in identity_endpoint.requests[before:]] == [CLIENT_ID]


def test_resolving_settings_does_not_load_azure_identity() -> None:
    """azure-identity loads when a credential is built, not before. (function_app.py's
    import loads it anyway: the SDK-type blob binding extension imports it.)"""
    code = (
        "import sys\n"
        "from shared.storage import clients\n"
        "from shared.storage.accounts import resolve_account\n"
        "resolve_account('AzureWebJobsStorage', {'AzureWebJobsStorage__accountName': 'abc'})\n"
        "print('azure.identity' in sys.modules)"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_readiness_in_azure_with_no_storage_setting_names_it(monkeypatch) -> None:
    from shared.health.readiness import readiness
    from shared.storage import clients
    from tests.identity.support import clear_service_caches

    for key in [k for k in os.environ if k.startswith("AzureWebJobsStorage")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "abc")
    clear_service_caches()
    try:
        checks = {
            c.part: c for c in readiness(lambda: None, clients.blob_service, clients.queue_service)
        }
    finally:
        clear_service_caches()
    for part in ("blob_storage", "queue_storage"):
        assert not checks[part].ok
        assert "AzureWebJobsStorage or AzureWebJobsStorage__accountName" in checks[part].detail
