"""SQL access: one repository API over SQLite (embedded) and SQL Server (pyodbc).

Import the module you need (``from shared.db.connection import open_database``): this
package imports none of its modules: two threads importing a package's modules for the
first time, each through the package, can wait for each other's import lock
(``tests/test_import_locks.py``).
"""
