"""Which storage account a connection setting names, and clients for it.

Resolved from the environment the way the Functions host reads a storage connection,
so the app's own clients reach the same account as its triggers:

- `<prefix>` (default `AzureWebJobsStorage`): a connection string with keys, or
  `UseDevelopmentStorage=true` for Azurite.
- identity-based, when `<prefix>` is not set (Azure deployments turn shared-key access
  off): `<prefix>__accountName` (public-cloud endpoints), or `<prefix>__blobServiceUri`
  and `<prefix>__queueServiceUri`; `<prefix>__credential=managedidentity` with
  `<prefix>__clientId` (a user-assigned identity) uses `ManagedIdentityCredential`;
  without `__credential`, `DefaultAzureCredential` (managed identity first in Azure, the
  developer's login elsewhere).

In Azure (`WEBSITE_INSTANCE_ID` set) there is no emulator: with nothing set, resolving
fails with a `ConfigError` that names the settings instead of trying Azurite.
azure-identity is imported only when a credential is built (cold start, light imports).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.settings import ConfigError, in_azure

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

DEFAULT_PREFIX = "AzureWebJobsStorage"
DEV_STORAGE = "UseDevelopmentStorage=true"
AZURE_MARKER = "WEBSITE_INSTANCE_ID"
MANAGED_IDENTITY = "managedidentity"

_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")

#: For the clients the app uses while an HTTP request waits (Azure's front end cuts a
#: request at 230 s). The SDK's defaults (20 s to connect, 60 s per socket read, three
#: retries backing off 15 s, 18 s and 24 s) make an account that does not answer cost
#: minutes; with these one operation gives up within about 25 s (two attempts of at
#: most 5 + 10 s, 0-2 s apart) and the caller answers 503. The timeouts are per socket
#: operation, not per transfer: a large upload or download still runs as long as bytes
#: keep moving.
REQUEST_CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 5,
    "read_timeout": 10,
    "retry_total": 1,
    "initial_backoff": 1,
    "increment_base": 2,
    "random_jitter_range": 1,
}


@dataclass(frozen=True)
class StorageAccount:
    """One storage connection, resolved. Hashable: clients are cached per account."""

    prefix: str
    connection_string: str | None = None
    blob_uri: str | None = None
    queue_uri: str | None = None
    credential: str | None = None  # "managedidentity", or None for DefaultAzureCredential
    client_id: str | None = None

    @property
    def keyless(self) -> bool:
        """True for identity-based connections (a token credential, no keys)."""
        return self.connection_string is None

    @property
    def is_dev_storage(self) -> bool:
        cs = (self.connection_string or "").replace(" ", "").lower()
        return cs.startswith("usedevelopmentstorage=true")

    def describe(self) -> str:
        """For logs: which settings were used, never a key."""
        if not self.keyless:
            return f"{self.prefix} (connection string)"
        who = self.credential or "DefaultAzureCredential"
        client = f", client id {self.client_id}" if self.client_id else ""
        return f"{self.prefix}__* (identity: {who}{client}; blob {self.blob_uri})"


def _get(env: Mapping[str, str], key: str) -> str | None:
    value = env.get(key, "").strip()
    return value or None


def _service_uri(key: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(
            key, f"expected an https:// service URI, got {value!r} (tokens travel over TLS only)"
        )
    return value.rstrip("/")


def find_account(
    prefix: str = DEFAULT_PREFIX, environ: Mapping[str, str] | None = None
) -> StorageAccount | None:
    """What the settings under `prefix` describe, or None when none of them is set.

    Like the host, a plain `<prefix>` value wins; the host also tries the name with an
    `AzureWebJobs` prefix for other connections.
    """
    env = os.environ if environ is None else environ
    candidates = [prefix]
    if not prefix.startswith("AzureWebJobs"):
        candidates.append(f"AzureWebJobs{prefix}")
    for name in candidates:
        if connection := _get(env, name):
            if in_azure(env) and connection.replace(" ", "").lower().startswith(
                "usedevelopmentstorage=true"
            ):
                raise ConfigError(
                    name, "UseDevelopmentStorage=true names the local emulator, absent in Azure"
                )
            return StorageAccount(name, connection_string=connection)
    for name in candidates:
        account = _identity_account(name, env)
        if account is not None:
            return account
    return None


def _identity_account(prefix: str, env: Mapping[str, str]) -> StorageAccount | None:
    account_name = _get(env, f"{prefix}__accountName")
    blob = _get(env, f"{prefix}__blobServiceUri")
    queue = _get(env, f"{prefix}__queueServiceUri")
    if not (account_name or blob or queue):
        return None
    if account_name is not None:
        if not _ACCOUNT_NAME.match(account_name):
            raise ConfigError(
                f"{prefix}__accountName",
                f"{account_name!r} is not a storage account name (3-24 of a-z, 0-9)",
            )
        blob = blob or f"https://{account_name}.blob.core.windows.net"
        queue = queue or f"https://{account_name}.queue.core.windows.net"
    credential = _get(env, f"{prefix}__credential")
    if credential is not None:
        if credential.lower() != MANAGED_IDENTITY:
            raise ConfigError(
                f"{prefix}__credential", f"expected {MANAGED_IDENTITY!r}, got {credential!r}"
            )
        credential = MANAGED_IDENTITY
    if _get(env, f"{prefix}__managedIdentityResourceId"):
        raise ConfigError(
            f"{prefix}__managedIdentityResourceId",
            f"not supported by this app: name the user-assigned identity with {prefix}__clientId",
        )
    return StorageAccount(
        prefix,
        blob_uri=_service_uri(f"{prefix}__blobServiceUri", blob) if blob else None,
        queue_uri=_service_uri(f"{prefix}__queueServiceUri", queue) if queue else None,
        credential=credential,
        client_id=_get(env, f"{prefix}__clientId"),
    )


def resolve_account(
    prefix: str = DEFAULT_PREFIX, environ: Mapping[str, str] | None = None
) -> StorageAccount:
    """The account for `prefix`; locally Azurite when nothing is set, in Azure an error."""
    env = os.environ if environ is None else environ
    account = find_account(prefix, env)
    if account is not None:
        return account
    if in_azure(env):
        raise ConfigError(
            prefix,
            f"not set, and Azure ({AZURE_MARKER} is set) has no storage emulator: "
            f"set {prefix} or {prefix}__accountName "
            f"(or {prefix}__blobServiceUri and {prefix}__queueServiceUri)",
        )
    return StorageAccount(prefix, connection_string=DEV_STORAGE)


def token_credential(account: StorageAccount) -> TokenCredential | None:
    """A new credential for an identity-based account (None for connection strings).

    Build it once per process and share it between clients: it caches its tokens.
    """
    if not account.keyless:
        return None
    if account.credential == MANAGED_IDENTITY:
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=account.client_id)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=account.client_id)


def _endpoint(account: StorageAccount, service: str) -> str:
    uri = account.blob_uri if service == "blob" else account.queue_uri
    if uri is None:
        key = f"{account.prefix}__{service}ServiceUri"
        raise ConfigError(key, f"not set: needed for {service} storage (or set __accountName)")
    return uri


def blob_service_client(
    account: StorageAccount, *, credential: Any = None, **kwargs: Any
) -> BlobServiceClient:
    """A BlobServiceClient for `account`; `kwargs` go to the SDK (timeouts, retry_total,
    transport). `credential` overrides the one built for identity-based accounts."""
    from azure.storage.blob import BlobServiceClient

    if account.connection_string is not None:
        return BlobServiceClient.from_connection_string(account.connection_string, **kwargs)
    return BlobServiceClient(
        _endpoint(account, "blob"),
        credential=credential or token_credential(account),
        **kwargs,
    )


def queue_service_client(
    account: StorageAccount, *, credential: Any = None, **kwargs: Any
) -> QueueServiceClient:
    """A QueueServiceClient for `account`; `kwargs` go to the SDK, as for blobs."""
    from azure.storage.queue import QueueServiceClient

    if account.connection_string is not None:
        return QueueServiceClient.from_connection_string(account.connection_string, **kwargs)
    return QueueServiceClient(
        _endpoint(account, "queue"),
        credential=credential or token_credential(account),
        **kwargs,
    )
