"""Liveness and readiness replies."""

from __future__ import annotations

from pydantic import BaseModel


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str
    failed: list[str]
    checks: dict[str, str]
