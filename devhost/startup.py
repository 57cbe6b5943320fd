"""Before serving: Azurite on demand, storage checks and resources, the HTTP socket.

Each step fails fast with a clear message (a missing setting, storage that does not
answer, a port in use) instead of after the SDK's retries or half-way into serving.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from shared.storage.accounts import find_account

from . import azurite as azurite_mod
from .bindings import split_blob_path
from .blob_listener import POISON_QUEUE, RECEIPTS_CONTAINER
from .loader import FunctionSpec
from .storage_clients import (
    DEFAULT_CONNECTION,
    StorageClients,
    StorageNotConfigured,
    reachable,
    resolve_connection,
)

log = logging.getLogger("devhost")

STORAGE_BINDINGS = ("queueTrigger", "blobTrigger", "queue", "blob")


def storage_bindings(spec: FunctionSpec) -> list[dict]:
    """The function's bindings that need a storage account."""
    return [b for b in (spec.trigger, *spec.inputs, *spec.outputs) if b["type"] in STORAGE_BINDINGS]


def required_resources(specs: list[FunctionSpec]) -> dict[str | None, tuple[set, set]]:
    """Per connection: queues and containers to create (templated names are skipped)."""
    needs: dict[str | None, tuple[set, set]] = {}
    for spec in specs:
        for binding in storage_bindings(spec):
            queues, containers = needs.setdefault(binding.get("connection"), (set(), set()))
            kind = binding["type"]
            if kind in ("queueTrigger", "queue") and "{" not in binding["queueName"]:
                queues.add(binding["queueName"])
                if kind == "queueTrigger":
                    queues.add(binding["queueName"] + "-poison")
            elif kind in ("blobTrigger", "blob"):
                container, _ = split_blob_path(binding["path"])
                if "{" not in container:
                    containers.add(container)
                if kind == "blobTrigger":
                    containers.add(RECEIPTS_CONTAINER)
                    queues.add(POISON_QUEUE)
    return needs


def maybe_start_azurite(folder: Path) -> azurite_mod.Azurite | None:
    """Start Azurite on the development ports unless storage points elsewhere or it runs."""
    account = find_account(DEFAULT_CONNECTION)
    if account is not None and not account.is_dev_storage:
        return None  # a real connection string or identity-based settings
    if account is None:
        os.environ[DEFAULT_CONNECTION] = "UseDevelopmentStorage=true"
    if azurite_mod.port_open(10000):
        log.info("Something already listens on 127.0.0.1:10000; using it as Azurite")
        return None
    data = folder / ".data"
    log.info("Starting Azurite (data in %s)", data / "azurite")
    return azurite_mod.start(
        data / "azurite",
        blob_port=10000,
        queue_port=10001,
        table_port=10002,
        log_file=data / "azurite.log",
    )


def partition_by_storage(specs: tuple[FunctionSpec, ...]) -> tuple[list[FunctionSpec], list[tuple]]:
    """Functions whose storage settings exist, and the rest with the reason."""
    ok, skipped = [], []
    for spec in specs:
        try:
            for binding in storage_bindings(spec):
                resolve_connection(binding.get("connection"))
        except StorageNotConfigured as exc:
            skipped.append((spec.name, str(exc)))
            continue
        ok.append(spec)
    return ok, skipped


def prepare_storage(storage: StorageClients, specs: list[FunctionSpec]) -> None:
    """Check the endpoints answer, then create the queues and containers bindings name."""
    for connection, (queues, containers) in required_resources(specs).items():
        log.info("Storage: %s", resolve_connection(connection).describe())
        for url in (storage.queue_service(connection).url, storage.blob_service(connection).url):
            if not reachable(url):
                raise ConnectionError(
                    f"storage at {url} does not answer: start Azurite (or use --with-azurite)"
                )
        storage.ensure_queues(connection, queues)
        storage.ensure_containers(connection, containers)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the HTTP port now, so a port in use stops the host before anything starts."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
