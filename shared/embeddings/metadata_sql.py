"""A metadata filter as a parameterised SQL condition over ``embeddings.metadata``.

The filter's canonical JSON (``MetadataFilter.canonical``: every comparison
``{"field": {"$op": operand}}``, ``$and``/``$or`` lists, ``{}`` for all) is rendered per
dialect with the same semantics as ``MetadataFilter.matches``, which the tests hold it to.

Keys and values only ever travel as parameters. A key is matched against the ``key``
column of the object's rows (SQLite ``json_each``, SQL Server ``OPENJSON``) rather than
put in a JSON path, so any key the metadata rules accept works, quotes and dots
included. Each typed comparison looks only at values of its type, as the reference does:
numbers against numbers (integers and reals alike), booleans by their JSON type (never
as 0/1), strings exactly. On SQL Server strings are compared as bytes, since ``=`` on
NVARCHAR follows the column's collation (case-insensitive by default) and ignores
trailing spaces. ``$in``/``$nin`` lists travel as one JSON-array parameter each (strings,
numbers), so a 10,000-value list stays within the drivers' parameter limits.

No JSON index backs this: an expression index cannot take the key as a parameter. The
condition runs on one set's rows, which the indexes on (model_id, embedding_type, ...)
find; listing walks ``ix_embeddings_set_id`` from its cursor, so a page stops reading
once it has its rows.
"""

# ruff: noqa: S608 -- this module builds SQL text only from its own fragments; every key
# and value of a filter is a parameter.
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.db.dialects import Dialect
    from shared.search.metadata_filter import MetadataFilter


def metadata_condition(
    flt: MetadataFilter, dialect: Dialect, column: str = "metadata"
) -> tuple[str, list[Any]]:
    """SQL text (a boolean condition, never NULL) and its parameters: true for exactly
    the rows whose ``column`` (JSON text or NULL) ``flt`` matches. ``column`` comes from
    code, never from input."""
    render = _MsSql(column) if dialect.name == "mssql" else _Sqlite(column)
    params: list[Any] = []
    sql = render.node(json.loads(flt.canonical()), params)
    return sql, params


class _Render:
    """Shared shape of both dialects: logic, negation and the per-operator dispatch."""

    def __init__(self, column: str) -> None:
        self.column = column

    def node(self, node: dict[str, Any], params: list[Any]) -> str:
        if not node:
            return "1 = 1"
        ((key, value),) = node.items()
        if key in ("$and", "$or"):
            joiner = " AND " if key == "$and" else " OR "
            return "(" + joiner.join(self.node(child, params) for child in value) + ")"
        ((op, operand),) = value.items()
        return self.leaf(key, op, operand, params)

    def leaf(self, field: str, op: str, operand: Any, params: list[Any]) -> str:
        if op == "$exists":
            sql = self.field_exists(field, "1 = 1", [], params)
            return sql if operand else f"NOT {sql}"
        if op in ("$eq", "$ne"):
            sql = self.equals(field, operand, params)
            return sql if op == "$eq" else f"NOT {sql}"
        if op in ("$in", "$nin"):
            strings = [x for x in operand if isinstance(x, str)]
            numbers = [float(x) for x in operand if not isinstance(x, str)]
            sql = self.any_of(field, strings, numbers, params)
            return sql if op == "$in" else f"NOT {sql}"
        symbol = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
        return self.field_exists(
            field, f"{self.is_number()} AND {self.number()} {symbol} ?", [float(operand)], params
        )

    def equals(self, field: str, operand: Any, params: list[Any]) -> str:
        if isinstance(operand, bool):
            return self.field_exists(field, self.is_bool(operand), [], params)
        if isinstance(operand, str):
            cond = (
                f"(({self.is_text()} AND {self.text_eq('f')}) OR "
                f"({self.is_list()} AND {self.list_holds(self.text_eq('g'))}))"
            )
            return self.field_exists(field, cond, [operand, operand], params)
        return self.field_exists(
            field, f"{self.is_number()} AND {self.number()} = ?", [float(operand)], params
        )

    def any_of(
        self, field: str, strings: list[str], numbers: list[float], params: list[Any]
    ) -> str:
        parts: list[str] = []
        values: list[Any] = []
        if strings:
            listed = json.dumps(strings, ensure_ascii=False)
            parts.append(f"({self.is_text()} AND {self.text_in('f')})")
            parts.append(f"({self.is_list()} AND {self.list_holds(self.text_in('g'))})")
            values += [listed, listed]
        if numbers:
            parts.append(f"({self.is_number()} AND {self.number_in()})")
            values.append(json.dumps(numbers))
        if not parts:
            return "1 = 0"  # $in: [] matches no row
        return self.field_exists(field, "(" + " OR ".join(parts) + ")", values, params)

    # Per dialect: f is the field's row (key, value, type), g an element of a list.
    def field_exists(self, field: str, cond: str, values: list[Any], params: list[Any]) -> str:
        raise NotImplementedError

    def is_text(self) -> str:
        raise NotImplementedError

    def is_number(self) -> str:
        raise NotImplementedError

    def is_list(self) -> str:
        raise NotImplementedError

    def is_bool(self, value: bool) -> str:
        raise NotImplementedError

    def number(self) -> str:
        raise NotImplementedError

    def text_eq(self, alias: str) -> str:
        """The string ``alias.value`` equals the next parameter."""
        raise NotImplementedError

    def text_in(self, alias: str) -> str:
        """The string ``alias.value`` is in the next parameter's JSON array."""
        raise NotImplementedError

    def number_in(self) -> str:
        raise NotImplementedError

    def list_holds(self, element_cond: str) -> str:
        raise NotImplementedError


class _Sqlite(_Render):
    def field_exists(self, field: str, cond: str, values: list[Any], params: list[Any]) -> str:
        params.append(field)
        params.extend(values)
        return f"EXISTS (SELECT 1 FROM json_each({self.column}) AS f WHERE f.key = ? AND {cond})"

    def is_text(self) -> str:
        return "f.type = 'text'"

    def is_number(self) -> str:
        return "f.type IN ('integer', 'real')"

    def is_list(self) -> str:
        return "f.type = 'array'"

    def is_bool(self, value: bool) -> str:
        return "f.type = 'true'" if value else "f.type = 'false'"

    def number(self) -> str:
        return "f.atom"

    def text_eq(self, alias: str) -> str:
        return f"{alias}.atom = ?"

    def text_in(self, alias: str) -> str:
        return f"{alias}.atom IN (SELECT s.value FROM json_each(?) AS s)"

    def number_in(self) -> str:
        return "f.atom IN (SELECT s.value FROM json_each(?) AS s)"

    def list_holds(self, element_cond: str) -> str:
        return (
            "EXISTS (SELECT 1 FROM json_each(f.value) AS g "
            f"WHERE g.type = 'text' AND {element_cond})"
        )


class _MsSql(_Render):
    """OPENJSON's type column: 1 string, 2 number, 3 boolean, 4 array."""

    def field_exists(self, field: str, cond: str, values: list[Any], params: list[Any]) -> str:
        params.append(field)
        params.extend(values)
        return (
            f"EXISTS (SELECT 1 FROM OPENJSON({self.column}) AS f "
            f"WHERE {_bin('f.[key]')} = {_bin('?')} AND {cond})"
        )

    def is_text(self) -> str:
        return "f.[type] = 1"

    def is_number(self) -> str:
        return "f.[type] = 2"

    def is_list(self) -> str:
        return "f.[type] = 4"

    def is_bool(self, value: bool) -> str:
        return f"f.[type] = 3 AND f.[value] = '{'true' if value else 'false'}'"

    def number(self) -> str:
        # TRY_CAST: the type test beside it is not guaranteed to run first.
        return "TRY_CAST(f.[value] AS FLOAT)"

    def text_eq(self, alias: str) -> str:
        return f"{_bin(alias + '.[value]')} = {_bin('?')}"

    def text_in(self, alias: str) -> str:
        return (
            f"{_bin(alias + '.[value]')} IN (SELECT {_bin('s.[value]')} FROM OPENJSON(?) AS s "
            "WHERE s.[type] = 1)"
        )

    def number_in(self) -> str:
        return (
            f"{self.number()} IN (SELECT TRY_CAST(s.[value] AS FLOAT) FROM OPENJSON(?) AS s "
            "WHERE s.[type] = 2)"
        )

    def list_holds(self, element_cond: str) -> str:
        return (
            f"EXISTS (SELECT 1 FROM OPENJSON(f.[value]) AS g WHERE g.[type] = 1 AND {element_cond})"
        )


def _bin(expr: str) -> str:
    """An NVARCHAR as its bytes: exact, whatever the collation, trailing spaces included."""
    return f"CAST({expr} AS VARBINARY(MAX))"
