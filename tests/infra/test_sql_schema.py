"""infra/sql/schema.sql is the schema in code, rendered for Azure SQL: never edited by
hand, never out of date."""

from shared.db.migrate import mssql_script
from shared.db.schema import MIGRATIONS
from shared.settings import ROOT


def test_the_sql_file_is_what_the_code_generates() -> None:
    on_disk = (ROOT / "infra" / "sql" / "schema.sql").read_text()
    assert on_disk == mssql_script(), (
        "infra/sql/schema.sql differs from shared/db/schema.py: run "
        "`python -m shared.db.migrate --sql mssql > infra/sql/schema.sql`"
    )


def test_every_table_and_migration_is_in_it() -> None:
    text = mssql_script()
    for migration in MIGRATIONS:
        assert f"WHERE version = {migration.version})" in text
        for table in migration.tables:
            assert f"CREATE TABLE dbo.{table.name} (" in text
            for column in table.columns:
                assert f"  {column.name} " in text, (table.name, column.name)
