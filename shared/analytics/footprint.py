"""What the platform stores: models and versions with their blob bytes, embeddings per
model and type, and the database's own size. Plain SQL aggregates (few rows each)."""

from __future__ import annotations

from typing import Any

from shared.db.connection import Database

# Byte sums travel as FLOAT (exact below 2**53): the SQLite ODBC driver reports integer
# results as 32-bit and would truncate anything over 2 GiB.

# Versions whose bytes live in Blob Storage (a refused upload has size but no blob).
_MODELS = (
    "SELECT name, COUNT(*) AS versions, CAST(COALESCE(SUM(CASE WHEN blob_name IS NOT NULL "
    "THEN size_bytes ELSE 0 END), 0) AS FLOAT) AS blob_bytes "
    "FROM models GROUP BY name ORDER BY name"
)

# float32 vectors: 4 bytes per dimension.
_EMBEDDINGS = (
    "SELECT model_id, embedding_type, COUNT(*) AS n, MAX(dimension) AS dimension, "
    "CAST(SUM(dimension) AS FLOAT) * 4 AS vector_bytes "
    "FROM embeddings GROUP BY model_id, embedding_type ORDER BY model_id, embedding_type"
)


def storage_summary(db: Database) -> dict[str, Any]:
    """Models, versions, blob bytes, embeddings per (model, type), database bytes."""
    with db.transaction(readonly=True):
        models = db.query(_MODELS)
        embeddings = db.query(_EMBEDDINGS)
        database_bytes = db.scalar(db.dialect.database_bytes())
    by_model = [
        {"name": r["name"], "versions": int(r["versions"]), "blob_bytes": int(r["blob_bytes"])}
        for r in models
    ]
    sets = [
        {
            "model_id": r["model_id"],
            "embedding_type": r["embedding_type"],
            "count": int(r["n"]),
            "dimension": int(r["dimension"]),
            "vector_bytes": int(r["vector_bytes"]),
        }
        for r in embeddings
    ]
    return {
        "models": len(by_model),
        "versions": sum(m["versions"] for m in by_model),
        "blob_bytes": sum(m["blob_bytes"] for m in by_model),
        "by_model": by_model,
        "embeddings": sets,
        "embeddings_total": {
            "count": sum(s["count"] for s in sets),
            "vector_bytes": sum(s["vector_bytes"] for s in sets),
        },
        "database_bytes": int(database_bytes or 0),
        "dialect": db.dialect.name,
    }
