"""The database schema: its version, and migrations on demand for the deployment.

`azd deploy` calls `POST /api/database/migrate` with the master key right after the
code lands (infra/hooks/postdeploy), so migrations run inside Azure with the app's own
identity and the first user request never waits on them. They stay idempotent and
locked (sp_getapplock), so a request that raced it changes nothing.
"""

from __future__ import annotations

import azure.functions as func
from pydantic import BaseModel, Field

from shared.http.requests import handle_errors
from shared.http.responses import json_response
from shared.http.routing import http_route

bp = func.Blueprint()


class SchemaOut(BaseModel):
    version: int = Field(description="The database's schema version.")
    latest: int = Field(description="The latest schema version this code knows.")
    applied: list[int] = Field(
        description="Versions this call applied: POST database/migrate only (a GET applies "
        "none; the app also migrates on first use, so a GET after any call shows [])."
    )


def _schema(applied: list[int]) -> func.HttpResponse:
    from shared.db.app import database
    from shared.db.migrate import current_version
    from shared.db.schema import MIGRATIONS

    version = current_version(database())
    latest = max(m.version for m in MIGRATIONS)
    return json_response(SchemaOut(version=version, latest=latest, applied=applied).model_dump())


@http_route(
    bp,
    "database/schema",
    ["GET"],
    summary="The database's schema version and the latest this code knows.",
    tags=("database",),
    response=SchemaOut,
    errors=(503,),
)
@handle_errors
def database_schema(req: func.HttpRequest) -> func.HttpResponse:
    return _schema([])


@http_route(
    bp,
    "database/migrate",
    ["POST"],
    summary="Apply pending migrations now (master key); answers the versions applied.",
    tags=("database",),
    auth=func.AuthLevel.ADMIN,
    response=SchemaOut,
    errors=(503,),
)
@handle_errors
def database_migrate(req: func.HttpRequest) -> func.HttpResponse:
    from shared.db.connection import open_database
    from shared.db.migrate import apply_migrations
    from shared.settings import ROOT, get_settings

    # Its own connection: the app's shared one migrates when it first opens, which would
    # leave nothing to report here.
    db = open_database(get_settings().require("sql_connection"), base_dir=ROOT)
    try:
        applied = apply_migrations(db)
    finally:
        db.close()
    return _schema(applied)
