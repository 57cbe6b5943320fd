"""Optional equality filters, appended as parameter markers (column names come from code)."""

from __future__ import annotations

from typing import Any


def and_equal(sql: str, params: list[Any], **filters: Any) -> tuple[str, list[Any]]:
    """`sql` + ` AND col = ?` for each filter that is not None; values become parameters."""
    params = list(params)
    for column, value in filters.items():
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    return sql, params
