"""Timestamps travel as naive-UTC ISO-8601 text with milliseconds: sortable as text in
SQLite, accepted by SQL Server's DATETIME2, and read back the same from both."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

_seconds: dict[int, str] = {}


def stamp(ns: int) -> str:
    """Epoch nanoseconds as stored text: naive UTC, milliseconds cut, not rounded. The
    formatted second is reused, so rows stamped in a batch cost a division each."""
    sec, ms = divmod(ns // 1_000_000, 1000)
    prefix = _seconds.get(sec)
    if prefix is None:
        if len(_seconds) > 64:
            _seconds.clear()
        prefix = _seconds[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{prefix}.{ms:03d}"


def now() -> str:
    return stamp(time.time_ns())


def to_iso(value: Any) -> str | None:
    """A stored timestamp as ISO text with a Z, whichever driver read it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    text = str(value)
    return text if text.endswith("Z") else text + "Z"
