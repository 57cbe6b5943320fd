"""Timestamps travel as naive-UTC ISO-8601 text with milliseconds: sortable as text in
SQLite, accepted by SQL Server's DATETIME2, and read back the same from both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def to_iso(value: Any) -> str | None:
    """A stored timestamp as ISO text with a Z, whichever driver read it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    text = str(value)
    return text if text.endswith("Z") else text + "Z"
