"""The two SQL dialects. Statements are written once with `?` markers; only DDL,
upserts and row limits differ, and those are generated here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Logical column types -> (SQLite, SQL Server).
_TYPES: dict[str, tuple[str, str]] = {
    "serial": ("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT IDENTITY(1,1) PRIMARY KEY"),
    "key": ("TEXT", "NVARCHAR(64)"),
    "name": ("TEXT", "NVARCHAR(256)"),
    "text": ("TEXT", "NVARCHAR(MAX)"),
    "json": ("TEXT", "NVARCHAR(MAX)"),
    "int": ("INTEGER", "INT"),
    "bigint": ("INTEGER", "BIGINT"),
    "float": ("REAL", "FLOAT"),
    "blob": ("BLOB", "VARBINARY(MAX)"),
    "sha256": ("TEXT", "CHAR(64)"),
    "ts": ("TEXT", "DATETIME2(3)"),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    default: str | None = None


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    table: str
    ref_columns: tuple[str, ...]
    on_delete_cascade: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Dialect:
    name: str  # "sqlite" or "mssql"

    @property
    def _slot(self) -> int:
        return 0 if self.name == "sqlite" else 1

    def column_type(self, logical: str) -> str:
        return _TYPES[logical][self._slot]

    def create_table(self, table: Table) -> str:
        parts = []
        for col in table.columns:
            piece = f"{col.name} {self.column_type(col.type)}"
            if col.type != "serial":
                if not col.nullable:
                    piece += " NOT NULL"
                if col.default is not None:
                    piece += f" DEFAULT {col.default}"
            parts.append(piece)
        if table.primary_key:
            parts.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
        for cols in table.unique:
            parts.append(f"CONSTRAINT uq_{table.name}_{'_'.join(cols)} UNIQUE ({', '.join(cols)})")
        for fk in table.foreign_keys:
            clause = (
                f"FOREIGN KEY ({', '.join(fk.columns)}) REFERENCES {fk.table} "
                f"({', '.join(fk.ref_columns)})"
            )
            if fk.on_delete_cascade:
                clause += " ON DELETE CASCADE"
            parts.append(clause)
        body = ",\n  ".join(parts)
        if self.name == "sqlite":
            return f"CREATE TABLE IF NOT EXISTS {table.name} (\n  {body}\n)"
        return (
            f"IF OBJECT_ID(N'dbo.{table.name}', N'U') IS NULL\n"
            f"CREATE TABLE dbo.{table.name} (\n  {body}\n)"
        )

    def add_column(self, table: str, column: Column) -> str:
        """ALTER TABLE ... ADD a nullable column (SQLite runs it once: migrations are
        versioned; SQL Server's text is guarded so the script can run twice)."""
        kind = self.column_type(column.type)
        if self.name == "sqlite":
            return f"ALTER TABLE {table} ADD COLUMN {column.name} {kind}"
        return (
            f"IF COL_LENGTH(N'dbo.{table}', N'{column.name}') IS NULL\n"
            f"ALTER TABLE dbo.{table} ADD {column.name} {kind}"
        )

    def rename_column(self, table: str, old: str, new: str) -> str:
        """ALTER TABLE ... RENAME a column; keys, foreign keys and indexes on it follow
        (SQLite rewrites them; SQL Server refers to columns by id). SQL Server's text is
        guarded so the script can run twice."""
        if self.name == "sqlite":
            return f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}"
        return (
            f"IF COL_LENGTH(N'dbo.{table}', N'{old}') IS NOT NULL "
            f"AND COL_LENGTH(N'dbo.{table}', N'{new}') IS NULL\n"
            f"EXEC sp_rename N'dbo.{table}.{old}', N'{new}', N'COLUMN'"
        )

    def create_index(self, index: Index) -> str:
        cols = ", ".join(index.columns)
        if self.name == "sqlite":
            return f"CREATE INDEX IF NOT EXISTS {index.name} ON {index.table} ({cols})"
        return (
            f"IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'{index.name}')\n"
            f"CREATE INDEX {index.name} ON dbo.{index.table} ({cols})"
        )

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        update: Sequence[str] = (),
    ) -> str:
        """INSERT, or UPDATE `update` columns when a row with the same `key` exists.

        With no `update` columns it is "insert if absent". Parameters follow `columns`.
        """
        cols = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        if self.name == "sqlite":
            conflict = ", ".join(key)
            if update:
                sets = ", ".join(f"{c} = excluded.{c}" for c in update)
                action = f"DO UPDATE SET {sets}"
            else:
                action = "DO NOTHING"
            return (
                f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({conflict}) {action}"
            )
        source = ", ".join(f"? AS {c}" for c in columns)
        on = " AND ".join(f"target.{c} = src.{c}" for c in key)
        sql = f"MERGE dbo.{table} WITH (HOLDLOCK) AS target USING (SELECT {source}) AS src ON {on}"
        if update:
            sets = ", ".join(f"target.{c} = src.{c}" for c in update)
            sql += f" WHEN MATCHED THEN UPDATE SET {sets}"
        values = ", ".join(f"src.{c}" for c in columns)
        return sql + f" WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values});"

    def epoch_ms(self, column: str) -> str:
        """`column` (a `ts`) as integer milliseconds since 1970-01-01 UTC, so analytics
        reads timestamps as plain int64 instead of parsing text or datetime objects.

        SQLite's julianday is a double whose rounding error at today's dates is ~0.05 ms,
        so rounding gives the exact millisecond stored in the text. It stays a REAL (exact
        below 2**53): the SQLite ODBC driver reports a computed INTEGER as 32-bit and
        truncates it.
        """
        if self.name == "sqlite":
            return f"ROUND((julianday({column}) - 2440587.5) * 86400000.0)"
        return f"DATEDIFF_BIG(millisecond, CAST('1970-01-01' AS DATETIME2(3)), {column})"

    def database_bytes(self) -> str:
        """One row, one column `bytes`: the space the database takes (SQLite: pages in
        use times page size; SQL Server: pages allocated to every table and index). A
        FLOAT on SQLite, which the SQLite ODBC driver would otherwise cut to 32 bits."""
        if self.name == "sqlite":
            return (
                "SELECT CAST(page_count AS FLOAT) * page_size AS bytes "
                "FROM pragma_page_count(), pragma_page_size()"
            )
        return (
            "SELECT CAST(COALESCE(SUM(total_pages), 0) AS BIGINT) * 8192 AS bytes "
            "FROM sys.allocation_units"
        )

    def limit(self, select: str, order_by: str) -> str:
        """Append ORDER BY and a row limit taken from one trailing `?` parameter."""
        if self.name == "sqlite":
            return f"{select} ORDER BY {order_by} LIMIT ?"
        return f"{select} ORDER BY {order_by} OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY"


SQLITE = Dialect("sqlite")
MSSQL = Dialect("mssql")
