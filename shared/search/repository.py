"""The stored embedding sets as search reads them: versions, sizes and whole sets.

A set is the rows of one (model_id, embedding_type). Writers (``shared.embeddings``)
bump a set's version in the same transaction as its rows, so one primary-key lookup
tells a loaded copy whether it is stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.db.connection import Database
from shared.db.filters import and_equal


@dataclass(frozen=True)
class SetRows:
    """A whole set as one transaction read it: rows in insert order."""

    version: int
    ids: list[str]
    vectors: bytes  # float32 little-endian, row after row
    dimension: int
    metadata: list[str | None]  # each row's metadata as stored JSON text, or None


@dataclass(frozen=True)
class EmbeddingSet:
    model_id: str
    embedding_type: str
    dimension: int
    version: int
    count: int


class SetRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def sets(self, model_id: str | None = None) -> list[EmbeddingSet]:
        sql = (
            "SELECT s.model_id, s.embedding_type, s.dimension, s.version, "
            "(SELECT COUNT(*) FROM embeddings e WHERE e.model_id = s.model_id "
            "AND e.embedding_type = s.embedding_type) AS n FROM embedding_sets s"
        )
        params: list[Any] = []
        if model_id is not None:
            sql += " WHERE s.model_id = ?"
            params.append(model_id)
        rows = self.db.query(sql + " ORDER BY s.model_id, s.embedding_type", params)
        return [
            EmbeddingSet(
                r["model_id"],
                r["embedding_type"],
                int(r["dimension"]),
                int(r["version"]),
                int(r["n"]),
            )
            for r in rows
        ]

    def set_versions(
        self, model_id: str | None = None, embedding_type: str | None = None
    ) -> list[tuple[str, str, int, int]]:
        """(model_id, embedding_type, dimension, version) per set: the cheap staleness
        check search runs before every query."""
        sql, params = and_equal(
            "SELECT model_id, embedding_type, dimension, version FROM embedding_sets WHERE 1 = 1",
            [],
            model_id=model_id,
            embedding_type=embedding_type,
        )
        rows = self.db.query(sql + " ORDER BY model_id, embedding_type", params)
        return [
            (r["model_id"], r["embedding_type"], int(r["dimension"]), int(r["version"]))
            for r in rows
        ]

    def set_version(self, model_id: str, embedding_type: str) -> int | None:
        v = self.db.scalar(
            "SELECT version FROM embedding_sets WHERE model_id = ? AND embedding_type = ?",
            (model_id, embedding_type),
        )
        return None if v is None else int(v)

    def set_size(self, model_id: str, embedding_type: str) -> int:
        """How many rows a set holds (counted on the unique index's range)."""
        n = self.db.scalar(
            "SELECT COUNT(*) FROM embeddings WHERE model_id = ? AND embedding_type = ?",
            (model_id, embedding_type),
        )
        return int(n or 0)

    def load_set(self, model_id: str, embedding_type: str) -> tuple[int, list[str], bytes, int]:
        """(version, entity ids, concatenated vectors, dimension), read in one transaction
        so the version matches the rows."""
        got = self.load_rows(model_id, embedding_type)
        return got.version, got.ids, got.vectors, got.dimension

    def load_rows(self, model_id: str, embedding_type: str) -> SetRows:
        """The set's rows with their metadata, read in one transaction so the version
        matches the rows."""
        with self.db.transaction(readonly=True):
            head = self.db.query_one(
                "SELECT version, dimension FROM embedding_sets "
                "WHERE model_id = ? AND embedding_type = ?",
                (model_id, embedding_type),
            )
            if head is None:
                return SetRows(0, [], b"", 0, [])
            rows = self.db.query(
                "SELECT entity_id, vector, metadata FROM embeddings WHERE model_id = ? "
                "AND embedding_type = ? ORDER BY id",
                (model_id, embedding_type),
            )
        ids = [r["entity_id"] for r in rows]
        blob = b"".join(bytes(r["vector"]) for r in rows)
        metadata = [r["metadata"] for r in rows]
        return SetRows(int(head["version"]), ids, blob, int(head["dimension"]), metadata)
