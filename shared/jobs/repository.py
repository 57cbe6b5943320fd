"""Job status rows. Every job is keyed by its job_id, so a replayed message finds
its row instead of making a second one (queues deliver at least once)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.db.connection import Database
from shared.db.filters import and_equal
from shared.db.timestamps import now, to_iso
from shared.jobs.kinds import JobStatus
from shared.public_text import without_paths

_COLUMNS = (
    "id, kind, status, attempts, payload, result, error, created_at, started_at, "
    "finished_at, updated_at"
)


@dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    status: str
    attempts: int
    payload: Any
    result: Any
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str


def _job(row: dict[str, Any]) -> JobRecord:
    return JobRecord(
        id=row["id"],
        kind=row["kind"],
        status=row["status"],
        attempts=int(row["attempts"]),
        payload=json.loads(row["payload"]) if row["payload"] else None,
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
        created_at=to_iso(row["created_at"]) or "",
        started_at=to_iso(row["started_at"]),
        finished_at=to_iso(row["finished_at"]),
        updated_at=to_iso(row["updated_at"]) or "",
    )


class JobRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, job_id: str, kind: str, payload: Any) -> tuple[JobRecord, bool]:
        """Insert a queued job unless one with this id exists. Returns (job, created)."""
        ts = now()
        sql = self.db.dialect.upsert(
            "jobs",
            ("id", "kind", "status", "attempts", "payload", "created_at", "updated_at"),
            key=("id",),
        )
        created = self.db.execute(
            sql, (job_id, kind, JobStatus.QUEUED, 0, json.dumps(payload), ts, ts)
        )
        job = self.get(job_id)
        assert job is not None
        return job, created > 0

    def get(self, job_id: str) -> JobRecord | None:
        row = self.db.query_one(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))  # noqa: S608
        return _job(row) if row else None

    def list(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobRecord]:
        sql, params = and_equal(
            f"SELECT {_COLUMNS} FROM jobs WHERE 1 = 1",  # noqa: S608
            [],
            status=status,
            kind=kind,
        )
        rows = self.db.query(self.db.dialect.limit(sql, "created_at DESC, id"), [*params, limit])
        return [_job(r) for r in rows]

    def claim(self, job_id: str, claimant: str) -> bool:
        """Mark the job running for `claimant` (the queue message's id) and count the
        attempt, in one conditional UPDATE: True for exactly one of several messages
        that race for the same job (its rowcount decides, on SQLite and SQL Server).

        A queued or failed job can be claimed by any message; a running one only by the
        message that claimed it, which the queue redelivers when its invocation died
        (a duplicate message must not run the job beside it); a succeeded one by none.
        """
        ts = now()
        return (
            self.db.execute(
                "UPDATE jobs SET status = ?, attempts = attempts + 1, started_at = ?, "
                "finished_at = NULL, error = NULL, updated_at = ?, claimed_by = ? "
                "WHERE id = ? AND (status IN (?, ?) "
                "OR (status = ? AND claimed_by = ?))",
                (
                    JobStatus.RUNNING,
                    ts,
                    ts,
                    claimant,
                    job_id,
                    JobStatus.QUEUED,
                    JobStatus.FAILED,
                    JobStatus.RUNNING,
                    claimant,
                ),
            )
            > 0
        )

    def succeed(self, job_id: str, result: Any = None) -> None:
        ts = now()
        self.db.execute(
            "UPDATE jobs SET status = ?, result = ?, error = NULL, finished_at = ?, "
            "updated_at = ? WHERE id = ?",
            (JobStatus.SUCCEEDED, json.dumps(result), ts, ts, job_id),
        )

    def fail(self, job_id: str, error: str) -> None:
        ts = now()
        self.db.execute(
            "UPDATE jobs SET status = ?, error = ?, finished_at = ?, updated_at = ? WHERE id = ?",
            (JobStatus.FAILED, without_paths(error)[:4000], ts, ts, job_id),
        )

    def retry_later(self, job_id: str, error: str) -> None:
        """A failed attempt that the queue will retry: back to queued, error kept."""
        self.db.execute(
            "UPDATE jobs SET status = ?, error = ?, updated_at = ? WHERE id = ?",
            (JobStatus.QUEUED, without_paths(error)[:4000], now(), job_id),
        )

    def requeue(self, job_id: str) -> bool:
        """A failed job back to queued (for retry); other states are left alone."""
        return (
            self.db.execute(
                "UPDATE jobs SET status = ?, error = NULL, finished_at = NULL, updated_at = ? "
                "WHERE id = ? AND status = ?",
                (JobStatus.QUEUED, now(), job_id, JobStatus.FAILED),
            )
            > 0
        )
