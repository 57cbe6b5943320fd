"""API keys sent as ``Authorization: Bearer <key>``, as the openai SDK and the clients
built on it send them.

The Functions host reads its function keys from ``x-functions-key`` or ``?code=`` only,
so routes that take a Bearer key are anonymous at the host and check it here: against
``API_KEYS`` when set (in Azure, a Key Vault reference to the key the deployment made),
else against the local host's own keys (``LOCAL_FUNCTION_KEYS``, ``LOCAL_MASTER_KEY``).
Keys are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping

from shared.errors import AuthenticationError, ConfigurationError

MISSING = "no API key given: send it as Authorization: Bearer <key>"
WRONG = "the API key given is not valid here"


def accepted_keys(environ: Mapping[str, str] | None = None) -> tuple[bytes, ...]:
    """The keys a Bearer token may match; ConfigurationError naming ``API_KEYS`` if none."""
    env = os.environ if environ is None else environ
    if environ is None:
        from shared.settings import get_settings

        configured = get_settings().api_keys
        raw = configured.get_secret_value() if configured is not None else ""
    else:
        raw = env.get("API_KEYS", "")
    if raw.strip().lower().startswith("@microsoft.keyvault("):
        # The platform leaves a reference it could not resolve (a role still propagating,
        # a deleted secret) as its own text: that text, which names the vault, must never
        # work as a key.
        raise ConfigurationError(
            "API_KEYS is a Key Vault reference the platform could not resolve",
            field="API_KEYS",
        )
    if not raw.strip():
        raw = ",".join((env.get("LOCAL_FUNCTION_KEYS", ""), env.get("LOCAL_MASTER_KEY", "")))
    keys = tuple(k.strip().encode() for k in raw.split(",") if k.strip())
    if not keys:
        raise ConfigurationError("no API key is configured", field="API_KEYS")
    return keys


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    value = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_api_key(headers: Mapping[str, str], keys: tuple[bytes, ...] | None = None) -> None:
    """Raise AuthenticationError (401) unless the request carries an accepted key."""
    token = bearer_token(headers)
    if token is None:
        raise AuthenticationError(MISSING)
    given = token.encode()
    ok = False
    for key in keys if keys is not None else accepted_keys():
        ok |= hmac.compare_digest(given, key)  # no early exit: time does not tell which
    if not ok:
        raise AuthenticationError(WRONG)
