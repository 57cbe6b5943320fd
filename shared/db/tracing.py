"""SQL spans: one CLIENT span per statement, named by its verb and table.

Only the verb and the table go on the span (`db.operation`, `db.sql.table`), never the
statement's parameters: values can be personal data and make every span unique.
"""

from __future__ import annotations

import re
from functools import lru_cache

from shared.telemetry import ClientSpan

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


def sql_span(system: str, database: str | None, sql: str) -> ClientSpan:
    """A span for one statement: db.system, db.name, the verb and the table."""
    name, attributes = _described(system, database, sql)
    return ClientSpan(name, dict(attributes))


@lru_cache(maxsize=512)
def _described(system: str, database: str | None, sql: str) -> tuple[str, tuple]:
    verb, table = verb_and_table(sql)
    attributes = [("db.system", system), ("db.operation", verb)]
    if table:
        attributes.append(("db.sql.table", table))
    if database:
        attributes.append(("db.name", database))
    return (f"{verb} {table}" if table else verb), tuple(attributes)
