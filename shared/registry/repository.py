"""Registered models (bytes live in Blob Storage) and their initializer statistics."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.db.connection import Database
from shared.db.filters import and_equal
from shared.db.timestamps import now, to_iso
from shared.public_text import without_paths
from shared.registry.status import MODEL_STATUSES, ModelStatus


@dataclass(frozen=True)
class ModelRecord:
    id: str
    name: str
    version: int
    blob_uri: str | None
    blob_name: str | None
    size_bytes: int | None
    sha256: str | None
    content_type: str | None
    status: str
    error: str | None
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class TensorStats:
    name: str
    dtype: str
    shape: list[int | str]
    element_count: int
    min_value: float | None
    max_value: float | None
    mean_value: float | None
    std_value: float | None


def _model(row: dict[str, Any]) -> ModelRecord:
    return ModelRecord(
        id=row["id"],
        name=row["name"],
        version=int(row["version"]),
        blob_uri=row["blob_uri"],
        blob_name=row["blob_name"],
        size_bytes=None if row["size_bytes"] is None else int(row["size_bytes"]),
        sha256=row["sha256"],
        content_type=row["content_type"],
        status=row["status"],
        error=row["error"],
        metadata=json.loads(row["metadata"]) if row["metadata"] else {},
        created_at=to_iso(row["created_at"]) or "",
        updated_at=to_iso(row["updated_at"]) or "",
    )


_COLUMNS = (
    "id, name, version, blob_uri, blob_name, size_bytes, sha256, content_type, status, "
    "error, metadata, created_at, updated_at"
)


class ModelRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(
        self,
        name: str,
        *,
        sha256: str,
        size_bytes: int,
        blob_uri: str,
        blob_name: str,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[ModelRecord, bool]:
        """Register a version of `name`; the same bytes again return the existing row.

        Returns (record, created).
        """
        with self.db.transaction():
            existing = self.db.query_one(
                f"SELECT {_COLUMNS} FROM models WHERE name = ? AND sha256 = ?",  # noqa: S608
                (name, sha256),
            )
            if existing:
                return _model(existing), False
            version_id = self._insert(
                name,
                sha256=sha256,
                size_bytes=size_bytes,
                blob_uri=blob_uri,
                blob_name=blob_name,
                content_type=content_type,
                status=ModelStatus.REGISTERED,
                error=None,
                metadata=metadata,
            )
        record = self.get(version_id)
        assert record is not None
        return record, True

    def record_refused(
        self, name: str, *, size_bytes: int, uploaded_as: str, reason: str
    ) -> ModelRecord:
        """An upload that cannot be registered (too big to read): a failed version with
        no bytes or hash that says why. One such row per name, updated on each refusal."""
        with self.db.transaction():
            row = self.db.query_one(
                f"SELECT {_COLUMNS} FROM models WHERE name = ? AND sha256 IS NULL",  # noqa: S608
                (name,),
            )
            if row:
                version_id = row["id"]
                self.db.execute(
                    "UPDATE models SET size_bytes = ?, status = ?, error = ?, updated_at = ? "
                    "WHERE id = ?",
                    (size_bytes, ModelStatus.FAILED, reason, now(), version_id),
                )
            else:
                version_id = self._insert(
                    name,
                    sha256=None,
                    size_bytes=size_bytes,
                    blob_uri=None,
                    blob_name=None,
                    content_type=None,
                    status=ModelStatus.FAILED,
                    error=reason,
                    metadata={"uploaded_as": uploaded_as},
                )
        record = self.get(version_id)
        assert record is not None
        return record

    def _insert(
        self,
        name: str,
        *,
        sha256: str | None,
        size_bytes: int,
        blob_uri: str | None,
        blob_name: str | None,
        content_type: str | None,
        status: str,
        error: str | None,
        metadata: dict[str, Any] | None,
    ) -> str:
        """Insert the next version of `name` (inside the caller's transaction)."""
        version = int(
            self.db.scalar(
                "SELECT COALESCE(MAX(version), 0) + 1 AS v FROM models WHERE name = ?", (name,)
            )
        )
        ts = now()
        version_id = uuid.uuid4().hex
        self.db.execute(
            f"INSERT INTO models ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                version_id,
                name,
                version,
                blob_uri,
                blob_name,
                size_bytes,
                sha256,
                content_type,
                status,
                error,
                json.dumps(metadata or {}),
                ts,
                ts,
            ),
        )
        return version_id

    def latest_with_sha(self, name: str, sha256: str) -> ModelRecord | None:
        row = self.db.query_one(
            f"SELECT {_COLUMNS} FROM models WHERE name = ? AND sha256 = ?",  # noqa: S608
            (name, sha256),
        )
        return _model(row) if row else None

    def get(self, version_id: str) -> ModelRecord | None:
        row = self.db.query_one(f"SELECT {_COLUMNS} FROM models WHERE id = ?", (version_id,))  # noqa: S608
        return _model(row) if row else None

    def latest(self, name: str, *, ready_only: bool = False) -> ModelRecord | None:
        sql = f"SELECT {_COLUMNS} FROM models WHERE name = ?"  # noqa: S608
        params: list[Any] = [name]
        if ready_only:
            sql += " AND status = ?"
            params.append(ModelStatus.READY)
        rows = self.db.query(self.db.dialect.limit(sql, "version DESC"), [*params, 1])
        return _model(rows[0]) if rows else None

    def get_version(self, name: str, version: int) -> ModelRecord | None:
        row = self.db.query_one(
            f"SELECT {_COLUMNS} FROM models WHERE name = ? AND version = ?",  # noqa: S608
            (name, version),
        )
        return _model(row) if row else None

    def list(self, *, name: str | None = None, status: str | None = None, limit: int = 100):
        sql, params = and_equal(
            f"SELECT {_COLUMNS} FROM models WHERE 1 = 1",  # noqa: S608
            [],
            name=name,
            status=status,
        )
        rows = self.db.query(self.db.dialect.limit(sql, "name, version DESC"), [*params, limit])
        return [_model(r) for r in rows]

    def set_status(
        self,
        version_id: str,
        status: str,
        *,
        error: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        if status not in MODEL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(MODEL_STATUSES)}, got {status!r}")
        error = without_paths(error) if error else error  # users read it
        if metadata is None:
            changed = self.db.execute(
                "UPDATE models SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                (status, error, now(), version_id),
            )
        else:
            changed = self.db.execute(
                "UPDATE models SET status = ?, error = ?, metadata = ?, updated_at = ? "
                "WHERE id = ?",
                (status, error, json.dumps(metadata), now(), version_id),
            )
        return changed > 0

    def delete(self, version_id: str) -> bool:
        return self.db.execute("DELETE FROM models WHERE id = ?", (version_id,)) > 0

    # -- initializer statistics ------------------------------------------------------
    def replace_tensors(self, version_id: str, tensors: Sequence[TensorStats]) -> None:
        """Replace a model's tensor stats in one transaction (idempotent on replay)."""
        with self.db.transaction():
            self.db.execute("DELETE FROM model_tensors WHERE version_id = ?", (version_id,))
            self.db.executemany(
                "INSERT INTO model_tensors (version_id, name, dtype, shape, element_count, "
                "min_value, max_value, mean_value, std_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        version_id,
                        t.name,
                        t.dtype,
                        json.dumps(t.shape),
                        t.element_count,
                        t.min_value,
                        t.max_value,
                        t.mean_value,
                        t.std_value,
                    )
                    for t in tensors
                ],
            )

    def tensors(self, version_id: str) -> list[TensorStats]:
        rows = self.db.query(
            "SELECT name, dtype, shape, element_count, min_value, max_value, mean_value, "
            "std_value FROM model_tensors WHERE version_id = ? ORDER BY name",
            (version_id,),
        )
        return [
            TensorStats(
                name=r["name"],
                dtype=r["dtype"],
                shape=json.loads(r["shape"]),
                element_count=int(r["element_count"]),
                min_value=r["min_value"],
                max_value=r["max_value"],
                mean_value=r["mean_value"],
                std_value=r["std_value"],
            )
            for r in rows
        ]
