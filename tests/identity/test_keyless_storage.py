"""The app's storage code with no key at all: identity-based settings, a managed identity
token from the (loopback) platform endpoint, Azurite checking every bearer token."""

from __future__ import annotations

import io
import json
import ssl
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from shared.storage.accounts import blob_service_client, resolve_account
from tests.identity.support import CLIENT_ID, keyless_env
from tests.support.models import write_classifier


def test_services_upload_download_and_queue_without_a_key(keyless_services, tmp_path) -> None:
    from azure.identity import ManagedIdentityCredential

    services = keyless_services
    account = services.storage_account()
    assert account.keyless and account.client_id == CLIENT_ID
    blob = services.blob_service()
    assert isinstance(blob.credential, ManagedIdentityCredential)
    assert getattr(blob.credential, "account_key", None) is None
    assert blob.url.startswith("https://127.0.0.1:")

    data = write_classifier(tmp_path, "iris.onnx").read_bytes()
    services.model_store().ensure_container()
    reg = services.model_registry().upload("iris-keyless", io.BytesIO(data), 10 * 1024**2)
    assert reg.created and reg.job is not None

    size, sha = services.model_store().download_to("iris-keyless.onnx", tmp_path / "back.onnx")
    assert (tmp_path / "back.onnx").read_bytes() == data and size == len(data)
    assert sha == reg.model.sha256

    queue = services.queue_service().get_queue_client("ingestion-jobs")
    bodies = [json.loads(m.content) for m in queue.peek_messages(max_messages=32)]
    assert any(b["job_id"] == reg.job.id and b["kind"] == "model" for b in bodies)


def test_tokens_come_from_the_user_assigned_identity(keyless_services, identity_endpoint) -> None:
    before = len(identity_endpoint.requests)
    keyless_services.blob_service().get_service_properties()
    keyless_services.queue_service().get_service_properties()
    asked = identity_endpoint.requests[before:]
    assert asked, "no token was asked for"
    assert {q["client_id"] for q in asked} == {CLIENT_ID}
    assert {q["resource"] for q in asked} == {"https://storage.azure.com"}
    assert len(asked) == 1  # one credential per process: blob and queue share its token


def test_azurite_refuses_a_token_for_another_audience(
    oauth_azurite, identity_endpoint, tls, monkeypatch
) -> None:
    """The positive tests mean something only if the emulator really checks tokens."""
    for key, value in keyless_env(oauth_azurite, identity_endpoint, tls[0]).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(identity_endpoint, "audience", "https://vault.azure.net")
    client = blob_service_client(resolve_account("AzureWebJobsStorage"), retry_total=0)
    with pytest.raises((ClientAuthenticationError, HttpResponseError)) as err:
        client.get_service_properties()
    assert "audience" in str(err.value).lower()


def test_a_wrong_client_id_gets_no_token(oauth_azurite, identity_endpoint, tls, monkeypatch):
    for key, value in keyless_env(oauth_azurite, identity_endpoint, tls[0]).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AzureWebJobsStorage__clientId", "00000000-0000-0000-0000-000000000000")
    client = blob_service_client(resolve_account("AzureWebJobsStorage"), retry_total=0)
    with pytest.raises(ClientAuthenticationError, match="no identity with client id"):
        client.get_service_properties()


def _open(request: urllib.request.Request | str, cert: Path):
    return urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(cert)))


def test_upload_url_is_signed_with_a_user_delegation_key(keyless_services, tls) -> None:
    store = keyless_services.model_store()
    store.ensure_container()
    up = store.upload_url("delegated.onnx", timedelta(minutes=10))
    query = dict(p.split("=", 1) for p in up.url.split("?", 1)[1].split("&"))
    assert "skoid" in query and "sktid" in query  # user delegation, not an account key
    assert query["sp"] == "cw"  # create + write, nothing else

    put = urllib.request.Request(
        up.url, data=b"model bytes", method="PUT", headers={"x-ms-blob-type": "BlockBlob"}
    )
    with _open(put, tls[0]) as reply:
        assert reply.status == 201
    assert store.read_bytes("delegated.onnx", 1024) == b"model bytes"
    with pytest.raises(urllib.error.HTTPError) as read:  # write-only: no read back
        _open(up.url, tls[0])
    assert read.value.code == 403
    other = up.url.replace("/delegated.onnx?", "/other.onnx?")  # this blob only
    with pytest.raises(urllib.error.HTTPError) as wrong:
        _open(
            urllib.request.Request(
                other, data=b"x", method="PUT", headers={"x-ms-blob-type": "BlockBlob"}
            ),
            tls[0],
        )
    assert wrong.value.code == 403
