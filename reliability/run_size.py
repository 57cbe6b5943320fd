"""How big one run is. Defaults are the full run; environment overrides make quick ones."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

MiB = 1 << 20


def _int(env: Mapping[str, str], key: str, default: int, lo: int = 1) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    value = int(raw)
    if value < lo:
        raise ValueError(f"{key} must be at least {lo}, got {value}")
    return value


@dataclass(frozen=True)
class RunSettings:
    seconds: int = 60  # locust run time
    users: int = 6  # concurrent locust clients, spread evenly over the three routes
    search_rows: int = 100_000
    dim: int = 384
    messages: int = 10_000
    rows_per_message: int = 3
    drain_seconds: int = 900  # longest wait for the queue to drain
    search_cache_bytes: int = 512 * MiB  # the host's SEARCH_CACHE_BYTES for the run
    suites: bool = True  # run the fault and hostile-input tests too

    def describe(self) -> str:
        """One line for the report: the sizes the figures belong to."""
        return (
            f"{self.users} locust clients for {self.seconds} s; search over "
            f"{self.search_rows:,} x {self.dim}; {self.messages:,} queue messages of "
            f"{self.rows_per_message} rows; SEARCH_CACHE_BYTES {self.search_cache_bytes // MiB} MiB"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunSettings:
        """`RELIABILITY_SECONDS`, `_USERS`, `_SEARCH_ROWS`, `_MESSAGES`, `_DRAIN_SECONDS`,
        `_SUITES=0` shrink a run while developing; nothing else changes."""
        e = os.environ if env is None else env
        d = cls()
        return cls(
            seconds=_int(e, "RELIABILITY_SECONDS", d.seconds),
            users=_int(e, "RELIABILITY_USERS", d.users, lo=3),
            search_rows=_int(e, "RELIABILITY_SEARCH_ROWS", d.search_rows),
            messages=_int(e, "RELIABILITY_MESSAGES", d.messages),
            drain_seconds=_int(e, "RELIABILITY_DRAIN_SECONDS", d.drain_seconds),
            suites=e.get("RELIABILITY_SUITES", "1").strip() != "0",
        )
