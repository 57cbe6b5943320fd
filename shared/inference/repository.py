"""One row per inference call, for analytics (latency, rows, confidence, outcome)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.db.connection import Database
from shared.db.timestamps import now, to_iso


@dataclass(frozen=True)
class InferenceRecord:
    model_name: str
    model_version: int | None
    latency_ms: float
    rows: int
    outcome: str
    confidence: float | None = None
    version_id: str | None = None  # models.id of the version that ran
    error: str | None = None
    created_at: str | None = None


class InferenceLogRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, rec: InferenceRecord) -> None:
        self.db.execute(
            "INSERT INTO inference_log (version_id, model_name, model_version, latency_ms, rows, "
            "confidence, outcome, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.version_id,
                rec.model_name,
                rec.model_version,
                rec.latency_ms,
                rec.rows,
                rec.confidence,
                rec.outcome,
                rec.error,
                rec.created_at or now(),
            ),
        )

    def recent(self, model_name: str, limit: int = 100) -> list[InferenceRecord]:
        sql = self.db.dialect.limit(
            "SELECT version_id, model_name, model_version, latency_ms, rows, confidence, outcome, "
            "error, created_at FROM inference_log WHERE model_name = ?",
            "created_at DESC, id DESC",
        )
        return [
            InferenceRecord(
                model_name=r["model_name"],
                model_version=r["model_version"],
                latency_ms=float(r["latency_ms"]),
                rows=int(r["rows"]),
                outcome=r["outcome"],
                confidence=r["confidence"],
                version_id=r["version_id"],
                error=r["error"],
                created_at=to_iso(r["created_at"]),
            )
            for r in self.db.query(sql, (model_name, limit))
        ]

    def summary(self, model_name: str) -> dict[str, Any]:
        row = self.db.query_one(
            "SELECT COUNT(*) AS calls, SUM(rows) AS total_rows, AVG(latency_ms) AS mean_ms, "
            "MAX(latency_ms) AS max_ms, AVG(confidence) AS mean_confidence, "
            "SUM(CASE WHEN outcome = ? THEN 1 ELSE 0 END) AS failures "
            "FROM inference_log WHERE model_name = ?",
            ("failed", model_name),
        )
        assert row is not None
        return {
            "calls": int(row["calls"] or 0),
            "rows": int(row["total_rows"] or 0),
            "mean_latency_ms": row["mean_ms"],
            "max_latency_ms": row["max_ms"],
            "mean_confidence": row["mean_confidence"],
            "failures": int(row["failures"] or 0),
        }

    def stats_by_version(self, model_name: str) -> list[dict[str, Any]]:
        """Per version and outcome: calls, rows, total latency (ms), last call (epoch ms),
        for the protocol's statistics extension."""
        last = self.db.dialect.epoch_ms("MAX(created_at)")
        rows = self.db.query(
            f"SELECT model_version, outcome, COUNT(*) AS calls, SUM(rows) AS total_rows, "  # noqa: S608
            f"SUM(latency_ms) AS total_ms, {last} AS last_ms FROM inference_log "
            "WHERE model_name = ? GROUP BY model_version, outcome",
            (model_name,),
        )
        return [
            {
                "version": r["model_version"],
                "outcome": r["outcome"],
                "calls": int(r["calls"]),
                "rows": int(r["total_rows"] or 0),
                "total_ms": float(r["total_ms"] or 0.0),
                "last_ms": int(r["last_ms"] or 0),
            }
            for r in rows
        ]
