"""SQL access: one repository API over SQLite (embedded) and SQL Server (pyodbc)."""

from shared.db.connection import Database, DatabaseError, open_database

__all__ = ["Database", "DatabaseError", "open_database"]
