"""SQL access: one repository API over SQLite (embedded) and SQL Server (pyodbc).

Import the module you need (``from shared.db.connection import open_database``): this
package imports none of its modules, for the reason given in ``shared/db/repos``.
"""
