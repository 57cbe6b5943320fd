"""Analytics over HTTP: usage over time, per-model figures, storage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.http.shapes import Strict


class UsageQuery(Strict):
    bucket: Literal["day", "week", "month"] = Field(
        default="day", description="UTC day, ISO week (from Monday) or calendar month."
    )
    days: int = Field(default=30, ge=1, le=365, description="The last N UTC days, today included.")


class ModelsQuery(Strict):
    days: int | None = Field(
        default=None, ge=1, le=365, description="The last N UTC days; all time when absent."
    )


class Latency(BaseModel):
    """Milliseconds; percentiles by the nearest-rank method (an observed value)."""

    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class Histogram(BaseModel):
    edges: list[float] = Field(description="Bin edges over [0, 1]; 1.0 falls in the last bin.")
    counts: list[int]


class Confidence(BaseModel):
    count: int = Field(description="Calls that reported a confidence.")
    mean: float | None
    histogram: Histogram | None = None


class ModelFigures(BaseModel):
    name: str
    registered: bool = Field(description="False for calls to a name that is not registered.")
    count: int
    failures: int
    rows: int = Field(description="Input rows (batch sizes) summed over the calls.")
    latency_ms: Latency
    confidence: Confidence
    first_at: str | None
    last_at: str | None


class ModelAnalytics(ModelFigures):
    days: int | None


class ModelAnalyticsList(BaseModel):
    days: int | None
    models: list[ModelFigures]


class UsageBucket(BaseModel):
    start: str
    inferences: int
    failures: int
    latency_p95_ms: float | None
    jobs: int
    job_failures: int


class UsageTotals(BaseModel):
    inferences: int
    failures: int
    rows: int
    jobs: int
    job_failures: int


class JobKindUsage(BaseModel):
    kind: str
    count: int
    failures: int


class UsageOut(BaseModel):
    bucket: Literal["day", "week", "month"]
    days: int
    since: str
    until: str
    totals: UsageTotals
    buckets: list[UsageBucket]
    jobs_by_kind: list[JobKindUsage]


class ModelStorage(BaseModel):
    name: str
    versions: int
    blob_bytes: int


class EmbeddingStorage(BaseModel):
    model_id: str
    embedding_type: str
    count: int
    dimension: int
    vector_bytes: int


class EmbeddingTotals(BaseModel):
    count: int
    vector_bytes: int


class StorageOut(BaseModel):
    models: int
    versions: int
    blob_bytes: int = Field(description="Bytes of every registered version in Blob Storage.")
    by_model: list[ModelStorage]
    embeddings: list[EmbeddingStorage]
    embeddings_total: EmbeddingTotals
    database_bytes: int = Field(
        description="SQLite: page_count * page_size; SQL Server: allocated pages * 8 KiB."
    )
    dialect: Literal["sqlite", "mssql"]
