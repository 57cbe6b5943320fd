"""Storage clients for triggers and output bindings: one per connection, reused.

A binding's `connection` names an app setting (default AzureWebJobsStorage; Azure also
tries the name with an `AzureWebJobs` prefix). Clients are made once per process, because
a client per message exhausts ports under load.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import requests
from azure.core.exceptions import ResourceExistsError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import QueueClient, QueueServiceClient

DEFAULT_CONNECTION = "AzureWebJobsStorage"
log = logging.getLogger("devhost.storage")


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


def resolve_connection(name: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The connection string for a binding's `connection` property."""
    env = os.environ if environ is None else environ
    key = name or DEFAULT_CONNECTION
    for candidate in (key, f"AzureWebJobs{key}"):
        value = env.get(candidate, "").strip()
        if value:
            return value
    raise StorageNotConfigured(f"storage connection setting {key!r} is not set")


class StorageClients:
    """Process-wide cache of blob and queue clients keyed by connection string."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._blob: dict[str, BlobServiceClient] = {}
        self._queue_services: dict[str, QueueServiceClient] = {}
        self._queues: dict[tuple[str, str], QueueClient] = {}
        self._containers: dict[tuple[str, str], ContainerClient] = {}
        self._transport = _shared_transport()

    def blob_service(self, connection: str | None) -> BlobServiceClient:
        conn = resolve_connection(connection, self._env)
        with self._lock:
            if conn not in self._blob:
                self._blob[conn] = BlobServiceClient.from_connection_string(
                    conn, transport=self._transport
                )
            return self._blob[conn]

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
                self._queue_services[conn] = QueueServiceClient.from_connection_string(
                    conn, transport=self._transport
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
            ]
        for client in clients:
            try:
                client.close()
            except Exception:  # closing is best effort at exit
                log.debug("closing %r failed", client, exc_info=True)
        self._transport.session.close()
