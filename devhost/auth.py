"""Function keys for HTTP auth levels, as the Functions host checks them.

ANONYMOUS needs nothing; FUNCTION takes a function key or the master key; ADMIN only the
master key. The key comes in the `x-functions-key` header or the `code` query parameter.
Locally the keys are settings (LOCAL_FUNCTION_KEYS, comma-separated; LOCAL_MASTER_KEY).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"


@dataclass(frozen=True)
class KeyRing:
    """The keys that open FUNCTION and ADMIN routes."""

    function_keys: tuple[str, ...] = ()
    master_key: str | None = None
    generated: bool = False  # True when no key was configured and one was made up

    @classmethod
    def from_settings(cls, environ: Mapping[str, str]) -> KeyRing:
        """Keys from settings; with none set, a random function key a developer can use."""
        keys = tuple(k.strip() for k in environ.get("LOCAL_FUNCTION_KEYS", "").split(","))
        keys = tuple(k for k in keys if k)
        master = environ.get("LOCAL_MASTER_KEY", "").strip() or None
        if not keys and master is None:
            return cls((secrets.token_urlsafe(32),), None, generated=True)
        return cls(keys, master)

    def allows(self, level: str, presented: str | None) -> bool:
        """Whether `presented` opens a route of this auth level (constant-time compare)."""
        level = level.upper()
        if level == "ANONYMOUS":
            return True
        if not presented:
            return False
        candidates = [self.master_key] if self.master_key else []
        if level != "ADMIN":
            candidates.extend(self.function_keys)
        given = presented.encode()
        ok = False
        for key in candidates:  # no early exit: time does not tell which key matched
            ok |= hmac.compare_digest(given, key.encode())
        return ok


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key a request carries: header first, then `?code=`."""
    return headers.get(KEY_HEADER) or query.get(KEY_QUERY)
