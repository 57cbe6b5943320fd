"""The app's storage clients, built once per process and reused (ports run out under
load otherwise).

Lazy: importing this module touches no network, so a broken setting shows up as a clear
error on the route that needs storage, not as "0 functions found".
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    from shared.storage.accounts import StorageAccount
    from shared.storage.blob_store import BlobModelStore

#: Readiness probes must answer fast: no SDK retry loop, short socket timeouts.
PROBE_CLIENT_OPTIONS = {"retry_total": 0, "connection_timeout": 1, "read_timeout": 1}


@cache
def storage_account() -> StorageAccount:
    """The AzureWebJobsStorage account: connection string or identity-based settings."""
    from shared.storage.accounts import resolve_account

    return resolve_account()


@cache
def storage_credential() -> TokenCredential | None:
    """One token credential per process for identity-based storage (it caches tokens)."""
    from shared.storage.accounts import token_credential

    return token_credential(storage_account())


@cache
def blob_service() -> BlobServiceClient:
    """Blob Storage with short timeouts and one quick retry: an account that does not
    answer fails the request with a 503 well before the front end's 230 s cut."""
    from shared.storage.accounts import REQUEST_CLIENT_OPTIONS, blob_service_client

    account, credential = storage_account(), storage_credential()
    return blob_service_client(account, credential=credential, **REQUEST_CLIENT_OPTIONS)


@cache
def queue_service() -> QueueServiceClient:
    """Queue Storage, with the same short timeouts as `blob_service`."""
    from shared.storage.accounts import REQUEST_CLIENT_OPTIONS, queue_service_client

    account, credential = storage_account(), storage_credential()
    return queue_service_client(account, credential=credential, **REQUEST_CLIENT_OPTIONS)


@cache
def probe_blob_service() -> BlobServiceClient:
    from shared.storage.accounts import blob_service_client

    account, credential = storage_account(), storage_credential()
    return blob_service_client(account, credential=credential, **PROBE_CLIENT_OPTIONS)


@cache
def probe_queue_service() -> QueueServiceClient:
    from shared.storage.accounts import queue_service_client

    account, credential = storage_account(), storage_credential()
    return queue_service_client(account, credential=credential, **PROBE_CLIENT_OPTIONS)


@cache
def container(name: str) -> BlobModelStore:
    """One container of the account, by its name (from the settings)."""
    from shared.storage.blob_store import BlobModelStore

    return BlobModelStore(blob_service(), name)
