"""End to end with no key: the local host runs function_app.py with only identity-based
storage settings (no AzureWebJobsStorage), against Azurite over HTTPS with OAuth."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.queue import QueueServiceClient

from devhost.azurite import DEV_ACCOUNT, DEV_KEY
from shared.storage.accounts import blob_service_client, resolve_account
from tests.identity.support import CLIENT_ID, keyless_env
from tests.support.host import Host, running_app, wait_for_job, wait_for_model
from tests.support.models import write_classifier

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keyless_host(
    oauth_azurite, identity_endpoint, tls, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Host]:
    env = keyless_env(oauth_azurite, identity_endpoint, tls[0])
    # The test reads the poison queues with the emulator's key (Azurite takes both); the
    # host itself has no key.
    queues = QueueServiceClient(
        oauth_azurite.queue_uri,
        credential={"account_name": DEV_ACCOUNT, "account_key": DEV_KEY},
        connection_verify=str(tls[0]),
    )
    folder = tmp_path_factory.mktemp("keyless-app")
    with running_app(folder, None, env, watch_queues=queues) as app:
        yield app


def test_host_runs_with_no_connection_string(keyless_host: Host, identity_endpoint) -> None:
    environ = Path(f"/proc/{keyless_host.process.pid}/environ").read_bytes().split(b"\0")
    names = {item.split(b"=", 1)[0].decode() for item in environ if item}
    assert "AzureWebJobsStorage" not in names
    assert "AzureWebJobsStorage__clientId" in names
    keyless_host.wait_for_log(f"identity: managedidentity, client id {CLIENT_ID}")
    ready = keyless_host.call("GET", "/ready", key=None)
    assert ready.status == 200, ready.body
    assert any(q["client_id"] == CLIENT_ID for q in identity_endpoint.requests)


def test_model_upload_is_ingested_through_the_queue_trigger(keyless_host: Host, tmp_path):
    data = write_classifier(tmp_path, "iris-keyless.onnx").read_bytes()
    reply = keyless_host.call("POST", "/models?name=iris-keyless", raw=data)
    assert reply.status == 202, reply.body
    job = wait_for_job(keyless_host, reply.json()["job_id"])
    assert job["status"] == "succeeded", job
    model = wait_for_model(keyless_host, "iris-keyless")
    assert model["status"] == "ready" and model["size_bytes"] == len(data)


def test_blob_trigger_registers_a_model_written_keylessly(
    keyless_host: Host, tmp_path, monkeypatch
) -> None:
    for key, value in keyless_host.env.items():
        if key.startswith(("AzureWebJobsStorage__", "IDENTITY_", "REQUESTS_CA")):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    service = blob_service_client(resolve_account())
    data = write_classifier(tmp_path, "iris-dropped.onnx").read_bytes()
    service.get_blob_client("models", "iris-dropped.onnx").upload_blob(io.BytesIO(data))
    model = wait_for_model(keyless_host, "iris-dropped")
    assert model["status"] == "ready" and model["size_bytes"] == len(data)


def test_upload_url_from_the_host_is_a_user_delegation_sas(keyless_host: Host) -> None:
    reply = keyless_host.call("POST", "/models/upload-url?name=iris-big&expires_in=600")
    assert reply.status == 200, reply.body
    assert "skoid=" in reply.json()["url"] and "sp=cw" in reply.json()["url"]
