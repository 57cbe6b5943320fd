"""Embeddings: float32 little-endian bytes per (model, type, entity), as VARBINARY(MAX).

Every write bumps its set's version in the same transaction, so a search index in
any process can see it is stale with one primary-key lookup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.db.connection import Database
from shared.db.filters import and_equal
from shared.db.timestamps import now, to_iso
from shared.embeddings.metadata_sql import metadata_condition
from shared.errors import ConflictError

if TYPE_CHECKING:
    from shared.search.metadata_filter import MetadataFilter


class EmbeddingDimensionError(ConflictError):
    """A vector's dimension differs from the one its (model, type) set already has."""

    code = "dimension_conflict"

    def __init__(self, model_id: str, embedding_type: str, expected: int, got: int) -> None:
        super().__init__(
            f"model {model_id!r} type {embedding_type!r} stores {expected}-dimensional "
            f"vectors; got {got}",
            field="items",
        )
        self.expected = expected
        self.got = got


@dataclass(frozen=True)
class EmbeddingRow:
    entity_id: str
    model_id: str
    embedding_type: str
    dimension: int
    vector: bytes
    created_at: str
    updated_at: str
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class ListedRow:
    """One row of a set as listing returns it; ``id`` is the row's serial key, which
    an upsert of the same entity keeps (it updates in place), so it orders a walk."""

    id: int
    entity_id: str
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class UpsertCounts:
    inserted: int
    updated: int


class EmbeddingRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert_many(
        self,
        model_id: str,
        embedding_type: str,
        items: Sequence[tuple[str, bytes]],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> UpsertCounts:
        """Insert or replace vectors for one set in one transaction. ``metadata`` (one
        per item, checked by the caller) replaces each row's metadata too: a row written
        without any keeps none, as a vector database's upsert replaces the whole record."""
        if not items:
            return UpsertCounts(0, 0)
        if metadata is not None and len(metadata) != len(items):
            raise ValueError("metadata must give one entry per item")
        texts = [_json(m) for m in metadata] if metadata is not None else [None] * len(items)
        dims = {len(v) // 4 for _, v in items}
        if len(dims) != 1 or any(len(v) % 4 for _, v in items):
            raise ValueError("all vectors in one upsert must be float32 and share a dimension")
        dim = dims.pop()
        ts = now()
        with self.db.transaction():
            self._touch_set(model_id, embedding_type, dim, ts)
            ids = [entity for entity, _ in items]
            existing = self._existing(model_id, embedding_type, ids)
            sql = self.db.dialect.upsert(
                "embeddings",
                (
                    "entity_id",
                    "model_id",
                    "embedding_type",
                    "dimension",
                    "vector",
                    "metadata",
                    "created_at",
                    "updated_at",
                ),
                key=("model_id", "embedding_type", "entity_id"),
                update=("dimension", "vector", "metadata", "updated_at"),
            )
            self.db.executemany(
                sql,
                [
                    (e, model_id, embedding_type, dim, v, m, ts, ts)
                    for (e, v), m in zip(items, texts, strict=True)
                ],
            )
        updated = len(existing)
        return UpsertCounts(inserted=len(set(ids)) - updated, updated=updated)

    def set_metadata(
        self,
        entity_id: str,
        model_id: str,
        embedding_type: str,
        metadata: Mapping[str, Any] | None,
    ) -> bool:
        """Replace one row's metadata (the vector stays), bumping its set's version so
        loaded copies reload; False when there is no such row."""
        ts = now()
        with self.db.transaction():
            changed = self.db.execute(
                "UPDATE embeddings SET metadata = ?, updated_at = ? "
                "WHERE model_id = ? AND embedding_type = ? AND entity_id = ?",
                (_json(metadata), ts, model_id, embedding_type, entity_id),
            )
            if changed:
                self._bump(model_id, embedding_type, ts)
        return bool(changed)

    def _existing(self, model_id: str, embedding_type: str, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            # Only `?` markers are interpolated; the ids travel as parameters.
            sql = (
                "SELECT entity_id FROM embeddings WHERE model_id = ? AND embedding_type = ? "  # noqa: S608
                f"AND entity_id IN ({marks})"
            )
            rows = self.db.query(sql, [model_id, embedding_type, *chunk])
            found.update(r["entity_id"] for r in rows)
        return found

    def _touch_set(self, model_id: str, embedding_type: str, dim: int, ts: str) -> None:
        current = self.db.query_one(
            "SELECT dimension FROM embedding_sets WHERE model_id = ? AND embedding_type = ?",
            (model_id, embedding_type),
        )
        if current is None:
            self.db.execute(
                self.db.dialect.upsert(
                    "embedding_sets",
                    ("model_id", "embedding_type", "dimension", "version", "updated_at"),
                    key=("model_id", "embedding_type"),
                ),
                (model_id, embedding_type, dim, 0, ts),
            )
        elif int(current["dimension"]) != dim:
            count = self.db.scalar(
                "SELECT COUNT(*) AS n FROM embeddings WHERE model_id = ? AND embedding_type = ?",
                (model_id, embedding_type),
            )
            if count:
                raise EmbeddingDimensionError(
                    model_id, embedding_type, int(current["dimension"]), dim
                )
            self.db.execute(
                "UPDATE embedding_sets SET dimension = ? WHERE model_id = ? AND embedding_type = ?",
                (dim, model_id, embedding_type),
            )
        self._bump(model_id, embedding_type, ts)

    def _bump(self, model_id: str, embedding_type: str, ts: str) -> None:
        self.db.execute(
            "UPDATE embedding_sets SET version = version + 1, updated_at = ? "
            "WHERE model_id = ? AND embedding_type = ?",
            (ts, model_id, embedding_type),
        )

    def get(
        self, entity_id: str, *, model_id: str | None = None, embedding_type: str | None = None
    ) -> list[EmbeddingRow]:
        sql, params = self._filtered(
            "SELECT entity_id, model_id, embedding_type, dimension, vector, metadata, "
            "created_at, updated_at FROM embeddings WHERE entity_id = ?",
            entity_id,
            model_id,
            embedding_type,
        )
        rows = self.db.query(sql + " ORDER BY model_id, embedding_type", params)
        return [
            EmbeddingRow(
                entity_id=r["entity_id"],
                model_id=r["model_id"],
                embedding_type=r["embedding_type"],
                dimension=int(r["dimension"]),
                vector=bytes(r["vector"]),
                created_at=to_iso(r["created_at"]) or "",
                updated_at=to_iso(r["updated_at"]) or "",
                metadata=json.loads(r["metadata"]) if r["metadata"] is not None else None,
            )
            for r in rows
        ]

    def delete(
        self, entity_id: str, *, model_id: str | None = None, embedding_type: str | None = None
    ) -> int:
        ts = now()
        with self.db.transaction():
            sql, params = self._filtered(
                "SELECT DISTINCT model_id, embedding_type FROM embeddings WHERE entity_id = ?",
                entity_id,
                model_id,
                embedding_type,
            )
            sets = self.db.query(sql, params)
            sql, params = self._filtered(
                "DELETE FROM embeddings WHERE entity_id = ?", entity_id, model_id, embedding_type
            )
            deleted = self.db.execute(sql, params)
            for s in sets:
                self._bump(s["model_id"], s["embedding_type"], ts)
        return deleted

    def list_page(
        self,
        model_id: str,
        embedding_type: str,
        flt: MetadataFilter,
        after_id: int,
        limit: int,
    ) -> list[ListedRow]:
        """Up to ``limit`` rows of the set matching ``flt`` whose id is above
        ``after_id``, by id. Rows written during a walk get larger ids and rows updated
        keep theirs, so walking page by page sees every row that stays exactly once."""
        where, params = self._where(model_id, embedding_type, flt)
        sql = self.db.dialect.limit(
            f"SELECT id, entity_id, metadata FROM embeddings WHERE {where} AND id > ?",  # noqa: S608
            "id",
        )
        rows = self.db.query(sql, [*params, after_id, limit])
        return [
            ListedRow(
                id=int(r["id"]),
                entity_id=r["entity_id"],
                metadata=json.loads(r["metadata"]) if r["metadata"] is not None else None,
            )
            for r in rows
        ]

    def count_matching(self, model_id: str, embedding_type: str, flt: MetadataFilter) -> int:
        """Rows of the set that ``flt`` matches."""
        where, params = self._where(model_id, embedding_type, flt)
        sql = f"SELECT COUNT(*) AS n FROM embeddings WHERE {where}"  # noqa: S608
        return int(self.db.scalar(sql, params) or 0)

    def delete_matching(self, model_id: str, embedding_type: str, flt: MetadataFilter) -> int:
        """Delete the set's rows that ``flt`` matches, bumping the set's version in the
        same transaction when any went; the number deleted."""
        where, params = self._where(model_id, embedding_type, flt)
        ts = now()
        with self.db.transaction():
            deleted = self.db.execute(f"DELETE FROM embeddings WHERE {where}", params)  # noqa: S608
            if deleted:
                self._bump(model_id, embedding_type, ts)
        return deleted

    def _where(
        self, model_id: str, embedding_type: str, flt: MetadataFilter
    ) -> tuple[str, list[Any]]:
        # The condition's text comes from code; keys and values are its parameters.
        sql = "model_id = ? AND embedding_type = ?"
        params: list[Any] = [model_id, embedding_type]
        if not flt.matches_all:
            condition, values = metadata_condition(flt, self.db.dialect)
            sql += f" AND {condition}"
            params += values
        return sql, params

    @staticmethod
    def _filtered(
        sql: str, entity_id: str, model_id: str | None, embedding_type: str | None
    ) -> tuple[str, list[Any]]:
        return and_equal(sql, [entity_id], model_id=model_id, embedding_type=embedding_type)


def _json(metadata: Mapping[str, Any] | None) -> str | None:
    """A row's metadata as stored: compact JSON text (the form its size limit counts),
    or NULL for none."""
    if metadata is None:
        return None
    return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
