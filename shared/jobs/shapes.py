"""Jobs over HTTP: submit, read, list, retry."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from shared.http.shapes import Strict
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


class JobList(BaseModel):
    jobs: list[JobOut]


class JobQuery(Strict):
    status: StatusName | None = None
    kind: RecordedKindName | None = None
    limit: int = Field(default=100, ge=1, le=1000)
