"""The schema, declared once; each dialect renders its own DDL from it."""

from __future__ import annotations

from dataclasses import dataclass

from shared.db.dialects import Column, Dialect, ForeignKey, Index, Table

C = Column

MODELS = Table(
    "models",
    (
        C("id", "key", nullable=False),
        C("name", "name", nullable=False),
        C("version", "int", nullable=False),
        C("blob_uri", "text"),
        C("blob_name", "name"),
        C("size_bytes", "bigint"),
        C("sha256", "sha256"),
        C("content_type", "name"),
        C("status", "key", nullable=False),
        C("error", "text"),
        C("metadata", "json"),
        C("created_at", "ts", nullable=False),
        C("updated_at", "ts", nullable=False),
    ),
    primary_key=("id",),
    unique=(("name", "version"), ("name", "sha256")),
)

# As migration 1 creates it; migration 3 renames model_id to version_id.
MODEL_TENSORS = Table(
    "model_tensors",
    (
        C("model_id", "key", nullable=False),
        C("name", "name", nullable=False),
        C("dtype", "key", nullable=False),
        C("shape", "json", nullable=False),
        C("element_count", "bigint", nullable=False),
        C("min_value", "float"),
        C("max_value", "float"),
        C("mean_value", "float"),
        C("std_value", "float"),
    ),
    primary_key=("model_id", "name"),
    foreign_keys=(ForeignKey(("model_id",), "models", ("id",)),),
)

EMBEDDINGS = Table(
    "embeddings",
    (
        C("id", "serial"),
        C("entity_id", "name", nullable=False),
        C("model_id", "name", nullable=False),
        C("embedding_type", "name", nullable=False),
        C("dimension", "int", nullable=False),
        C("vector", "blob", nullable=False),
        C("created_at", "ts", nullable=False),
        C("updated_at", "ts", nullable=False),
    ),
    unique=(("model_id", "embedding_type", "entity_id"),),
)

# One row per (model, type): the dimension every vector in the set shares and a
# version bumped in the same transaction as any write, so in-memory search indexes
# in any process can tell with one cheap query whether they are stale.
EMBEDDING_SETS = Table(
    "embedding_sets",
    (
        C("model_id", "name", nullable=False),
        C("embedding_type", "name", nullable=False),
        C("dimension", "int", nullable=False),
        C("version", "bigint", nullable=False),
        C("updated_at", "ts", nullable=False),
    ),
    primary_key=("model_id", "embedding_type"),
)

JOBS = Table(
    "jobs",
    (
        C("id", "key", nullable=False),
        C("kind", "key", nullable=False),
        C("status", "key", nullable=False),
        C("attempts", "int", nullable=False, default="0"),
        C("payload", "json"),
        C("result", "json"),
        C("error", "text"),
        C("created_at", "ts", nullable=False),
        C("started_at", "ts"),
        C("finished_at", "ts"),
        C("updated_at", "ts", nullable=False),
    ),
    primary_key=("id",),
)

# As migration 1 creates it; migration 3 renames model_id to version_id.
INFERENCE_LOG = Table(
    "inference_log",
    (
        C("id", "serial"),
        C("model_id", "key"),
        C("model_name", "name", nullable=False),
        C("model_version", "int"),
        C("latency_ms", "float", nullable=False),
        C("rows", "int", nullable=False),
        C("confidence", "float"),
        C("outcome", "key", nullable=False),
        C("error", "text"),
        C("created_at", "ts", nullable=False),
    ),
)

INDEXES = (
    Index("ix_models_sha256", "models", ("sha256",)),
    Index("ix_models_status", "models", ("status",)),
    Index("ix_jobs_status_kind", "jobs", ("status", "kind")),
    Index("ix_inference_log_model_time", "inference_log", ("model_name", "created_at")),
)

TABLES = (MODELS, MODEL_TENSORS, EMBEDDINGS, EMBEDDING_SETS, JOBS, INFERENCE_LOG)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    tables: tuple[Table, ...] = ()
    indexes: tuple[Index, ...] = ()
    columns: tuple[tuple[str, Column], ...] = ()  # (table, column) added to a table
    renames: tuple[tuple[str, str, str], ...] = ()  # (table, old column, new column)

    def statements(self, dialect: Dialect) -> list[str]:
        return (
            [dialect.create_table(t) for t in self.tables]
            + [dialect.add_column(table, c) for table, c in self.columns]
            + [dialect.rename_column(table, old, new) for table, old, new in self.renames]
            + [dialect.create_index(i) for i in self.indexes]
        )


# Append only: a released migration never changes.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", TABLES, INDEXES),
    # The queue message running a job: only its own redelivery (after the invocation
    # died) may take over a `running` job; a duplicate message may not.
    Migration(2, "jobs.claimed_by", columns=(("jobs", C("claimed_by", "key")),)),
    # `model_id` names the free-text model of an embedding set everywhere else (the
    # embeddings tables, the API); the key of one registered version (`models.id`) is
    # `version_id` wherever another table refers to it.
    Migration(
        3,
        "model_tensors.version_id, inference_log.version_id",
        renames=(
            ("model_tensors", "model_id", "version_id"),
            ("inference_log", "model_id", "version_id"),
        ),
    ),
    # A row's metadata (a JSON object, or none): what filtered search and listing
    # select rows by.
    Migration(4, "embeddings.metadata", columns=(("embeddings", C("metadata", "json")),)),
    # Listing a set walks it by row id (GET /api/embeddings): with this index a page
    # reads only its own rows, where the unique index would read and sort the whole set.
    Migration(
        5,
        "ix_embeddings_set_id",
        indexes=(
            Index("ix_embeddings_set_id", "embeddings", ("model_id", "embedding_type", "id")),
        ),
    ),
)
