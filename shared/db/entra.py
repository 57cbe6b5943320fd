"""Microsoft Entra authentication for Azure SQL through pyodbc: no password anywhere.

Two ways, chosen by one rule (`resolve_sql_auth`):

1. `SQL_CREDENTIAL` not set: `SQL_CONNECTION_STRING` goes to the driver as it is. For a
   managed identity, ODBC Driver 18 logs in by itself with
   `Authentication=ActiveDirectoryMsi;UID=<client id of a user-assigned identity>`.
2. `SQL_CREDENTIAL=managedidentity` (optional `SQL_CLIENT_ID`, a user-assigned identity)
   or `SQL_CREDENTIAL=default` (`DefaultAzureCredential`, e.g. a developer's `az login`):
   the app gets an access token from azure-identity for
   `https://database.windows.net/.default` and hands it to the driver before the login
   (`attrs_before={SQL_COPT_SS_ACCESS_TOKEN: <token struct>}`). The connection string
   then must not carry UID, PWD, Authentication or Trusted_Connection (the driver
   refuses a token together with them). Each new connection gets a token that is valid
   for at least five more minutes; open connections stay logged in when it expires.

In Azure (`WEBSITE_INSTANCE_ID` set) a connection string with `PWD=`/`Password=` is
refused: deployments use Entra authentication, and a password in an app setting is a
secret in plain configuration (a leftover from a local setup, most often).
`SQL_CREDENTIAL` applies to ODBC connection strings; `sqlite:///` ignores it.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from shared.settings import ConfigError

SQL_COPT_SS_ACCESS_TOKEN = 1256  # msodbcsql.h: pre-connect attribute for an Entra token
SCOPE = "https://database.windows.net/.default"
REFRESH_MARGIN_SECONDS = 300
CREDENTIALS = ("managedidentity", "default")

_PASSWORD = re.compile(r"(?i)(?:^|;)\s*(?:pwd|password)\s*=")
_LOGIN_KEYS = re.compile(
    r"(?i)(?:^|;)\s*(uid|user id|user|pwd|password|authentication|trusted_connection)\s*="
)


@dataclass(frozen=True)
class SqlAuth:
    """How connections log in: the connection string as is, or an access token."""

    credential: str | None = None  # None: the connection string as is

    client_id: str | None = None

    @property
    def uses_token(self) -> bool:
        return self.credential is not None


def resolve_sql_auth(connection: str, environ: Mapping[str, str] | None = None) -> SqlAuth:
    """The rule above, from SQL_CREDENTIAL / SQL_CLIENT_ID / WEBSITE_INSTANCE_ID.

    Raises ConfigError naming the setting; messages never repeat a password.
    """
    env = os.environ if environ is None else environ
    credential = env.get("SQL_CREDENTIAL", "").strip().lower() or None
    client_id = env.get("SQL_CLIENT_ID", "").strip() or None
    if credential is None:
        if client_id is not None:
            raise ConfigError(
                "SQL_CLIENT_ID",
                "is used only with SQL_CREDENTIAL=managedidentity (or put it in the connection "
                "string: Authentication=ActiveDirectoryMsi;UID=<client id>)",
            )
        if env.get("WEBSITE_INSTANCE_ID", "").strip() and _PASSWORD.search(connection):
            raise ConfigError(
                "SQL_CONNECTION_STRING",
                "carries a password (PWD=/Password=), refused in Azure: use Entra "
                "authentication (Authentication=ActiveDirectoryMsi;UID=<client id>, or "
                "SQL_CREDENTIAL=managedidentity with SQL_CLIENT_ID)",
            )
        return SqlAuth()
    if credential not in CREDENTIALS:
        raise ConfigError(
            "SQL_CREDENTIAL", f"expected one of {', '.join(CREDENTIALS)}, got {credential!r}"
        )
    login = _LOGIN_KEYS.search(connection)
    if login:
        raise ConfigError(
            "SQL_CONNECTION_STRING",
            f"must not set {login.group(1)} when SQL_CREDENTIAL is set: the access token "
            "is the login",
        )
    return SqlAuth(credential, client_id)


def token_struct(token: str) -> bytes:
    """The ACCESSTOKEN struct the ODBC driver reads: a 4-byte little-endian length, then
    the token as UTF-16-LE."""
    raw = token.encode("utf-16-le")
    return struct.pack("<I", len(raw)) + raw


class AccessTokens:
    """Tokens for new connections, renewed once fewer than `margin` seconds are left."""

    def __init__(
        self,
        credential: Any,
        scope: str = SCOPE,
        margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credential = credential
        self.scope = scope
        self.margin = margin
        self.clock = clock
        self._lock = threading.Lock()
        self._token: Any = None

    def current(self) -> str:
        with self._lock:
            if self._token is None or self._token.expires_on - self.clock() < self.margin:
                self._token = self.credential.get_token(self.scope)
            return self._token.token


def credential_for(auth: SqlAuth) -> Any:
    """A new azure-identity credential for token mode (imported only here)."""
    if auth.credential == "managedidentity":
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=auth.client_id)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=auth.client_id)


@cache
def _tokens(auth: SqlAuth) -> AccessTokens:
    """One token source per process and identity, shared by every connection."""
    return AccessTokens(credential_for(auth))


def connect_kwargs(connection: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Extra `pyodbc.connect` keywords for this connection string: `attrs_before` with
    a fresh token in token mode, nothing otherwise."""
    auth = resolve_sql_auth(connection, environ)
    if not auth.uses_token:
        return {}
    token = _tokens(auth).current()
    return {"attrs_before": {SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)}}
