"""Entra authentication for SQL: the rule that picks the login, the access-token struct,
and the token reaching pyodbc's `attrs_before` through a real ODBC driver manager.

Azure SQL and ODBC Driver 18 cannot run here: the driver's own use of the token (and of
Authentication=ActiveDirectoryMsi) is not exercised. What runs is everything up to it:
unixODBC with Debian's SQLite3 driver receives the pre-connect attribute 1256.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken

from shared.db.connection import DatabaseError, open_database
from shared.db.entra import (
    SQL_COPT_SS_ACCESS_TOKEN,
    AccessTokens,
    SqlAuth,
    connect_kwargs,
    resolve_sql_auth,
    token_struct,
)
from shared.settings import ROOT, ConfigError
from tests.identity.support import CLIENT_ID

ODBC = "Driver={ODBC Driver 18 for SQL Server};Server=tcp:x.database.windows.net,1433;Database=h"
AZURE = {"WEBSITE_INSTANCE_ID": "abc"}


def test_token_struct_is_length_prefixed_utf16le() -> None:
    assert token_struct("ab") == b"\x04\x00\x00\x00a\x00b\x00"
    token = "eyJ0eXAi." * 300  # real tokens run to a few kB
    data = token_struct(token)
    (length,) = struct.unpack_from("<I", data)
    assert length == len(data) - 4 == 2 * len(token)
    assert data[4:].decode("utf-16-le") == token


@pytest.mark.parametrize(
    ("connection", "env", "want"),
    [
        (ODBC + ";UID=u;PWD=p", {}, SqlAuth()),  # locally a password is the user's choice
        (ODBC + ";Authentication=ActiveDirectoryMsi;UID=" + CLIENT_ID, AZURE, SqlAuth()),
        (ODBC, {**AZURE, "SQL_CREDENTIAL": "managedidentity"}, SqlAuth("managedidentity")),
        (
            ODBC,
            {**AZURE, "SQL_CREDENTIAL": "ManagedIdentity", "SQL_CLIENT_ID": CLIENT_ID},
            SqlAuth("managedidentity", CLIENT_ID),
        ),
        (ODBC, {"SQL_CREDENTIAL": "default"}, SqlAuth("default")),
    ],
)
def test_the_rule_that_picks_the_login(connection: str, env: dict, want: SqlAuth) -> None:
    got = resolve_sql_auth(connection, env)
    assert got == want
    assert got.uses_token == (want.credential is not None)


@pytest.mark.parametrize(
    ("connection", "env", "setting", "reason"),
    [
        (ODBC + ";UID=u;PWD=hunter2", AZURE, "SQL_CONNECTION_STRING", "refused in Azure"),
        (ODBC + ";Password=hunter2", AZURE, "SQL_CONNECTION_STRING", "refused in Azure"),
        (ODBC, {"SQL_CREDENTIAL": "password"}, "SQL_CREDENTIAL", "expected one of"),
        (ODBC, {"SQL_CLIENT_ID": CLIENT_ID}, "SQL_CLIENT_ID", "SQL_CREDENTIAL=managedidentity"),
        (
            ODBC + ";Authentication=ActiveDirectoryMsi",
            {"SQL_CREDENTIAL": "managedidentity"},
            "SQL_CONNECTION_STRING",
            "must not set Authentication",
        ),
        (
            ODBC + ";UID=someone",
            {"SQL_CREDENTIAL": "default"},
            "SQL_CONNECTION_STRING",
            "must not set UID",
        ),
    ],
)
def test_refused_combinations_name_the_setting(connection, env, setting, reason) -> None:
    with pytest.raises(ConfigError, match=reason) as err:
        resolve_sql_auth(connection, env)
    assert err.value.setting == setting
    assert "hunter2" not in str(err.value)


class _CountingCredential:
    """A TokenCredential with chosen lifetimes: exercises AccessTokens' renewal rule
    (azure-identity's own cache would hide it; the real credential runs further down)."""

    def __init__(self, lifetime: int, clock) -> None:
        self.lifetime, self.clock, self.calls = lifetime, clock, 0

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        assert scopes == ("https://database.windows.net/.default",)
        self.calls += 1
        return AccessToken(f"token-{self.calls}", int(self.clock()) + self.lifetime)


def test_tokens_are_reused_then_renewed_before_they_expire() -> None:
    now = [1_000_000.0]
    credential = _CountingCredential(3600, lambda: now[0])
    tokens = AccessTokens(credential, clock=lambda: now[0])
    assert tokens.current() == "token-1"
    now[0] += 3000  # 600 s left: still good for a new login
    assert tokens.current() == "token-1" and credential.calls == 1
    now[0] += 400  # 200 s left, under the 300 s margin: renew
    assert tokens.current() == "token-2" and credential.calls == 2


def _token_env(monkeypatch, identity_endpoint) -> None:
    for key, value in identity_endpoint.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SQL_CREDENTIAL", "managedidentity")
    monkeypatch.setenv("SQL_CLIENT_ID", CLIENT_ID)


def test_managed_identity_token_goes_into_attrs_before(monkeypatch, identity_endpoint) -> None:
    _token_env(monkeypatch, identity_endpoint)
    kwargs = connect_kwargs(ODBC)
    asked = identity_endpoint.requests[-1]
    assert asked["resource"] == "https://database.windows.net"
    assert asked["client_id"] == CLIENT_ID
    issued = identity_endpoint.issued[-1]
    assert kwargs == {"attrs_before": {SQL_COPT_SS_ACCESS_TOKEN: token_struct(issued)}}
    assert connect_kwargs(ODBC.replace("Database=h", "Database=h2")) == kwargs  # reused
    monkeypatch.delenv("SQL_CREDENTIAL")
    monkeypatch.delenv("SQL_CLIENT_ID")
    assert connect_kwargs(ODBC) == {}


PROBE = """
import json, sys
from shared.db.connection import open_database
db = open_database(sys.argv[1])
print(json.dumps(db.scalar("SELECT 41 + 1 AS answer")))
"""


def _traced_connect(tmp_path: Path, extra_env: dict[str, str]) -> tuple[int, str]:
    """Open the SQLite3 ODBC driver through pyodbc in a fresh process with unixODBC's
    trace on (it is read when the ODBC environment is made: once per process)."""
    ini = Path(tempfile.mkdtemp(prefix="odbc"))  # unixODBC cuts TraceFile paths short
    trace = ini / "trace.log"
    (ini / "odbcinst.ini").write_text(
        f"[ODBC]\nTrace=Yes\nTraceFile={trace}\n\n"
        "[SQLite3]\nDescription=SQLite3 ODBC Driver\nDriver=libsqlite3odbc.so\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ODBCSYSINI": str(ini), **extra_env}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, f"Driver=SQLite3;Database={tmp_path / 'entra.db'}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout), trace.read_text(errors="replace")
    finally:
        shutil.rmtree(ini, ignore_errors=True)


def _attribute_before_connect(trace: str) -> bool:
    connect_at = trace.find("SQLDriverConnect")
    attr_at = trace.find(f"Attribute = {SQL_COPT_SS_ACCESS_TOKEN}")
    return connect_at > 0 and 0 <= attr_at < connect_at


def test_token_reaches_the_odbc_driver_manager_before_login(tmp_path, identity_endpoint):
    before = len(identity_endpoint.requests)
    env = {**identity_endpoint.env(), "SQL_CREDENTIAL": "managedidentity"}
    answer, trace = _traced_connect(tmp_path, {**env, "SQL_CLIENT_ID": CLIENT_ID})
    assert answer == 42
    assert _attribute_before_connect(trace), trace[:2000]
    asked = identity_endpoint.requests[before:]
    assert [q["resource"] for q in asked] == ["https://database.windows.net"]


def test_without_sql_credential_no_token_is_set(tmp_path) -> None:
    answer, trace = _traced_connect(tmp_path, {})
    assert answer == 42
    assert f"Attribute = {SQL_COPT_SS_ACCESS_TOKEN}" not in trace
    assert "SQLDriverConnect" in trace


def test_a_password_in_azure_stops_the_connection(tmp_path, monkeypatch) -> None:
    target = f"Driver=SQLite3;Database={tmp_path / 'pw.db'};PWD=hunter2"
    open_database(target).scalar("SELECT 1 AS one")  # locally: the user's choice
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "abc")
    db = open_database(target.replace("pw.db", "pw2.db"))
    with pytest.raises((DatabaseError, ConfigError), match="SQL_CONNECTION_STRING") as err:
        db.scalar("SELECT 1 AS one")
    assert "refused in Azure" in str(err.value) and "hunter2" not in str(err.value)
    assert not (tmp_path / "pw2.db").exists()  # refused before any connection was made
