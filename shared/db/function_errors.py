"""Why a Python SQL function failed, kept for the error the database layer raises.

Python's ``sqlite3`` replaces any exception raised inside a user-defined function or
aggregate with a fixed text ("user-defined function raised exception"), so the caller
would never learn which argument was wrong and why. Such functions record their own
text here before re-raising, and ``Database`` puts it into the ``OperationalError``.
The record is per thread: SQLite runs a statement's functions on the calling thread.
"""

from __future__ import annotations

import re
import threading

_local = threading.local()

#: sqlite3's fixed texts for a Python function or aggregate method that raised.
GENERIC = re.compile(r"user-defined (function|aggregate)")


def record(text: str) -> None:
    """Keep ``text`` as this thread's reason for the statement that is failing now."""
    _local.text = text


def take() -> str | None:
    """This thread's recorded reason (then forgotten), or None."""
    text = getattr(_local, "text", None)
    _local.text = None
    return text


def clear() -> None:
    """Forget a reason whose statement's error was handled elsewhere."""
    _local.text = None
