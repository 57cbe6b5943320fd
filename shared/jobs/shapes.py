"""Jobs over HTTP: submit, read, list, retry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from shared.http.shapes import Strict

if TYPE_CHECKING:
    from shared.jobs.repository import JobRecord
from shared.jobs.kinds import KindName, RecordedKindName, StatusName


class JobSubmitRequest(Strict):
    kind: KindName
    payload: dict[str, Any]
    job_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Idempotency key: the same id twice runs once.",
    )


class JobOut(BaseModel):
    id: str
    kind: str = Field(description='A job kind, or "unknown" for a malformed message without one.')
    status: StatusName
    attempts: int
    payload: Any = None
    result: Any = None
    error: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str
    url: str

    @classmethod
    def of(cls, record: JobRecord) -> JobOut:
        return cls(
            id=record.id,
            kind=record.kind,
            status=record.status,  # type: ignore[arg-type]
            attempts=record.attempts,
            payload=record.payload,
            result=record.result,
            error=record.error,
            created_at=record.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            updated_at=record.updated_at,
            url=f"/api/jobs/{record.id}",
        )


class JobList(BaseModel):
    jobs: list[JobOut]


class JobQuery(Strict):
    status: StatusName | None = None
    kind: RecordedKindName | None = None
    limit: int = Field(default=100, ge=1, le=1000)
