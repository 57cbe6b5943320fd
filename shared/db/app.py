"""The app's database, opened and migrated once per process.

Lazy: importing this module opens nothing. Features that add SQL functions to every
connection (``on_connect``) do so before the first connection is made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from shared.settings import ROOT, get_settings

if TYPE_CHECKING:
    from shared.db.connection import Database

_lock = threading.Lock()
#: Called with each new connection; the list is read at every connect.
_connect_hooks: list[Callable[[Any], None]] = []


def on_connect(hook: Callable[[Any], None]) -> None:
    """Run `hook(connection)` on every connection the app's database opens."""
    if hook not in _connect_hooks:
        _connect_hooks.append(hook)


@cache
def database() -> Database:
    """The app's database with its schema migrated (once per process)."""
    from shared.db.connection import open_database
    from shared.db.migrate import apply_migrations

    with _lock:
        settings = get_settings()
        db = open_database(
            settings.require("sql_connection"),
            base_dir=ROOT,
            on_connect=_connect_hooks,
            busy_timeout_ms=settings.sql_busy_timeout_ms,
        )
        apply_migrations(db)
        return db
