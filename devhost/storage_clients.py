"""Storage clients for triggers and output bindings: one per connection, reused.

A binding's `connection` names an app setting prefix (default AzureWebJobsStorage; Azure
also tries the name with an `AzureWebJobs` prefix): a connection string, or identity-based
`<prefix>__accountName` / `__blobServiceUri` + `__queueServiceUri` with `__credential` and
`__clientId`, resolved by the app's own `shared.storage.accounts` so the triggers reach the
account the app's clients reach, keyless too. Clients are made once per process, because
a client per message exhausts ports under load.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.exceptions import ResourceExistsError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import QueueClient, QueueServiceClient

from shared.storage.accounts import (
    StorageAccount,
    blob_service_client,
    find_account,
    queue_service_client,
    token_credential,
)

DEFAULT_CONNECTION = "AzureWebJobsStorage"
# The triggers' own calls (poll, receipts, poison): a path that drops packets silently
# must not stall a listener for the SDK's default 300 s read timeout.
# The poll loops retry on their own, so the SDK's own retries stay few.
LISTENER_TIMEOUTS = {"connection_timeout": 5, "read_timeout": 15, "retry_total": 2}
log = logging.getLogger("devhost.storage_clients")


class StorageNotConfigured(LookupError):
    """The connection setting a binding names is not set."""


def _shared_transport() -> RequestsTransport:
    """One HTTP session for every client, with a pool as big as the invocation threads.

    (requests' default pool keeps 10 connections per host and warns past that.)
    """
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=128, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=False)


def reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether the storage endpoint accepts TCP connections (fail fast, not after retries)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_connection(
    name: str | None, environ: Mapping[str, str] | None = None
) -> StorageAccount:
    """The storage account for a binding's `connection` property."""
    env = os.environ if environ is None else environ
    key = name or DEFAULT_CONNECTION
    account = find_account(key, env)
    if account is None:
        raise StorageNotConfigured(
            f"storage connection setting {key!r} is not set (nor {key}__accountName, "
            f"{key}__blobServiceUri / {key}__queueServiceUri)"
        )
    return account


class StorageClients:
    """Process-wide cache of blob and queue clients keyed by storage account."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._blob: dict[StorageAccount, BlobServiceClient] = {}
        self._queue_services: dict[StorageAccount, QueueServiceClient] = {}
        self._queues: dict[tuple[StorageAccount, str], QueueClient] = {}
        self._containers: dict[tuple[StorageAccount, str], ContainerClient] = {}
        self._credentials: dict[StorageAccount, Any] = {}
        self._transport = _shared_transport()

    def blob_service(self, connection: str | None) -> BlobServiceClient:
        conn = resolve_connection(connection, self._env)
        with self._lock:
            if conn not in self._blob:
                self._blob[conn] = blob_service_client(
                    conn,
                    credential=self._credential(conn),
                    transport=self._transport,
                    **LISTENER_TIMEOUTS,
                )
            return self._blob[conn]

    def _credential(self, account: StorageAccount) -> Any:
        """One token credential per identity-based account (it caches tokens); called
        under the lock."""
        if account not in self._credentials:
            self._credentials[account] = token_credential(account)
        return self._credentials[account]

    def container(self, connection: str | None, name: str) -> ContainerClient:
        conn = resolve_connection(connection, self._env)
        service = self.blob_service(connection)
        with self._lock:
            key = (conn, name)
            if key not in self._containers:
                self._containers[key] = service.get_container_client(name)
            return self._containers[key]

    def queue_service(self, connection: str | None) -> QueueServiceClient:
        conn = resolve_connection(connection, self._env)
        with self._lock:
            if conn not in self._queue_services:
                self._queue_services[conn] = queue_service_client(
                    conn,
                    credential=self._credential(conn),
                    transport=self._transport,
                    **LISTENER_TIMEOUTS,
                )
            return self._queue_services[conn]

    def queue(self, connection: str | None, name: str) -> QueueClient:
        """A QueueClient that sends and returns message text as is (no encode policy)."""
        conn = resolve_connection(connection, self._env)
        service = self.queue_service(connection)
        with self._lock:
            key = (conn, name)
            if key not in self._queues:
                self._queues[key] = service.get_queue_client(name)
            return self._queues[key]

    def ensure_queues(self, connection: str | None, names: Iterable[str]) -> None:
        """Create the queues that do not exist yet."""
        for name in sorted(set(names)):
            try:
                self.queue(connection, name).create_queue()
                log.info("created queue %s", name)
            except ResourceExistsError:
                pass

    def ensure_containers(self, connection: str | None, names: Iterable[str]) -> None:
        """Create the blob containers that do not exist yet."""
        for name in sorted(set(names)):
            try:
                self.container(connection, name).create_container()
                log.info("created container %s", name)
            except ResourceExistsError:
                pass

    def close(self) -> None:
        with self._lock:
            clients = [
                *self._blob.values(),
                *self._queue_services.values(),
                *self._queues.values(),
                *self._containers.values(),
                *(c for c in self._credentials.values() if c is not None),
            ]
        for client in clients:
            try:
                client.close()
            except Exception:  # closing is best effort at exit
                log.debug("closing %r failed", client, exc_info=True)
        self._transport.session.close()
