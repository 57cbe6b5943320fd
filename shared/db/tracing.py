"""SQL spans: one CLIENT span per statement, named by its verb and table.

Only the verb and the table go on the span (`db.operation`, `db.sql.table`), never the
statement's parameters: values can be personal data and make every span unique.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from opentelemetry import trace

from shared.telemetry import tracer

_TABLE_AFTER = {
    "SELECT": r"\bFROM\s+",
    "DELETE": r"\bFROM\s+",
    "INSERT": r"\bINTO\s+",
    "REPLACE": r"\bINTO\s+",
    "UPDATE": r"^\s*UPDATE\s+",
    "MERGE": r"^\s*MERGE\s+(?:INTO\s+)?",
    "CREATE": r"\b(?:TABLE|INDEX|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?",
    "DROP": r"\b(?:TABLE|INDEX|VIEW)\s+(?:IF\s+EXISTS\s+)?",
}
_NAME = r"[\[\"`]?([A-Za-z_][\w.]*)[\]\"`]?"


@lru_cache(maxsize=512)
def verb_and_table(sql: str) -> tuple[str, str | None]:
    """The statement's verb (SELECT, INSERT, ...) and its first table, if one is named."""
    words = sql.lstrip().split(None, 1)
    verb = words[0].upper() if words else ""
    if verb == "WITH":  # a CTE: the statement's own verb comes after it
        found = re.search(r"\)\s*(SELECT|INSERT|UPDATE|DELETE)\b", sql, re.IGNORECASE)
        verb = found.group(1).upper() if found else verb
    after = _TABLE_AFTER.get(verb)
    if after is None:
        return verb, None
    found = re.search(after + _NAME, sql, re.IGNORECASE)
    return verb, found.group(1) if found else None


@contextmanager
def sql_span(system: str, database: str | None, sql: str) -> Iterator[Any]:
    """A span for one statement: db.system, db.name, the verb and the table."""
    verb, table = verb_and_table(sql)
    attributes = {"db.system": system, "db.operation": verb}
    if table:
        attributes["db.sql.table"] = table
    if database:
        attributes["db.name"] = database
    name = f"{verb} {table}" if table else verb
    with tracer().start_as_current_span(
        name, kind=trace.SpanKind.CLIENT, attributes=attributes
    ) as span:
        yield span
