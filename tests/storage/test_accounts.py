"""The rules that turn storage settings into an account, one case each (no network)."""

from __future__ import annotations

import pytest

from shared.settings import ConfigError
from shared.storage.accounts import (
    DEV_STORAGE,
    StorageAccount,
    blob_service_client,
    find_account,
    queue_service_client,
    resolve_account,
    token_credential,
)

P = "AzureWebJobsStorage"
AZURE = {"WEBSITE_INSTANCE_ID": "abc123"}


def test_nothing_set_locally_is_the_emulator() -> None:
    account = resolve_account(P, {})
    assert account.connection_string == DEV_STORAGE and not account.keyless
    assert account.is_dev_storage


def test_nothing_set_in_azure_names_the_settings() -> None:
    with pytest.raises(ConfigError) as err:
        resolve_account(P, AZURE)
    assert "AzureWebJobsStorage or AzureWebJobsStorage__accountName" in str(err.value)
    assert err.value.setting == P


def test_emulator_string_is_refused_in_azure() -> None:
    with pytest.raises(ConfigError, match="emulator") as err:
        resolve_account(P, {**AZURE, P: "UseDevelopmentStorage=true"})
    assert err.value.setting == P


def test_connection_string_wins_over_identity_settings() -> None:
    cs = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=x;EndpointSuffix=core.windows.net"
    account = resolve_account(P, {P: cs, f"{P}__accountName": "other"})
    assert account.connection_string == cs and not account.keyless


def test_account_name_gives_public_cloud_endpoints_and_default_credential() -> None:
    account = resolve_account(P, {**AZURE, f"{P}__accountName": "hartostore01"})
    assert account.keyless and account.connection_string is None
    assert account.blob_uri == "https://hartostore01.blob.core.windows.net"
    assert account.queue_uri == "https://hartostore01.queue.core.windows.net"
    assert account.credential is None and account.client_id is None


def test_service_uris_with_a_user_assigned_managed_identity() -> None:
    env = {
        f"{P}__blobServiceUri": "https://127.0.0.1:1/devstoreaccount1/",
        f"{P}__queueServiceUri": "https://127.0.0.1:2/devstoreaccount1",
        f"{P}__credential": "ManagedIdentity",
        f"{P}__clientId": "11111111-2222-3333-4444-555555555555",
    }
    account = resolve_account(P, env)
    assert account == StorageAccount(
        P,
        blob_uri="https://127.0.0.1:1/devstoreaccount1",
        queue_uri="https://127.0.0.1:2/devstoreaccount1",
        credential="managedidentity",
        client_id="11111111-2222-3333-4444-555555555555",
    )


def test_explicit_service_uri_wins_over_the_account_name() -> None:
    env = {f"{P}__accountName": "abc", f"{P}__blobServiceUri": "https://blob.example.net"}
    account = resolve_account(P, env)
    assert account.blob_uri == "https://blob.example.net"
    assert account.queue_uri == "https://abc.queue.core.windows.net"


def test_other_connection_names_also_try_the_azurewebjobs_prefix() -> None:
    env = {"AzureWebJobsModels__accountName": "abc"}
    account = find_account("Models", env)
    assert account is not None and account.prefix == "AzureWebJobsModels"
    assert find_account("Models", {}) is None


@pytest.mark.parametrize(
    ("env", "setting", "reason"),
    [
        ({f"{P}__accountName": "Bad_Name"}, f"{P}__accountName", "not a storage account name"),
        ({f"{P}__blobServiceUri": "http://x.net"}, f"{P}__blobServiceUri", "https://"),
        ({f"{P}__queueServiceUri": "nope"}, f"{P}__queueServiceUri", "https://"),
        ({f"{P}__accountName": "ab1", f"{P}__credential": "key"}, f"{P}__credential", "expected"),
        (
            {f"{P}__accountName": "abc", f"{P}__managedIdentityResourceId": "/sub/x"},
            f"{P}__managedIdentityResourceId",
            "__clientId",
        ),
    ],
)
def test_bad_identity_settings_name_the_setting(env: dict, setting: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as err:
        resolve_account(P, env)
    assert err.value.setting == setting and setting in str(err.value)


def test_a_missing_queue_uri_is_named_when_a_queue_client_is_asked_for() -> None:
    account = resolve_account(P, {f"{P}__blobServiceUri": "https://b.example.net"})
    assert blob_service_client(account).url.startswith("https://b.example")
    with pytest.raises(ConfigError) as err:
        queue_service_client(account)
    assert err.value.setting == f"{P}__queueServiceUri"


def test_credential_kind_follows_the_credential_setting(monkeypatch) -> None:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:9/token")
    monkeypatch.setenv("IDENTITY_HEADER", "h")
    uri = {f"{P}__blobServiceUri": "https://b.example.net"}
    mi = token_credential(resolve_account(P, {**uri, f"{P}__credential": "managedidentity"}))
    assert isinstance(mi, ManagedIdentityCredential)
    assert isinstance(token_credential(resolve_account(P, uri)), DefaultAzureCredential)
    assert token_credential(resolve_account(P, {})) is None


def test_client_kwargs_reach_the_sdk() -> None:
    account = resolve_account(P, {})
    client = blob_service_client(account, retry_total=0, connection_timeout=2)
    assert client._config.retry_policy.total_retries == 0
    assert queue_service_client(account).url.startswith("http://127.0.0.1:10001/")


def test_identity_settings_are_documented_and_sampled_without_secrets() -> None:
    import json

    from shared.settings import ROOT

    readme = (ROOT / "README.md").read_text()
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    keys = [f"{P}__{s}" for s in ("accountName", "blobServiceUri", "queueServiceUri")]
    keys += [f"{P}__credential", f"{P}__clientId", "SQL_CREDENTIAL", "SQL_CLIENT_ID"]
    for key in keys:
        assert f"`{key}`" in readme, key
    for key in (f"{P}__accountName", f"{P}__clientId", "SQL_CREDENTIAL", "SQL_CLIENT_ID"):
        assert key in sample and (sample[key] == "" or sample[key].startswith("<")), key
    # the sample's connection string wins: its identity placeholders change nothing locally
    assert resolve_account(P, sample).connection_string == DEV_STORAGE
