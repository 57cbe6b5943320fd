"""GET /api/metrics/resources: the reply's shape."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ProcessUsage(BaseModel):
    pid: int
    cpu_percent: float = Field(ge=0, description="Percent of one core; up to 100 × cores.")
    memory_mb: float = Field(ge=0, description="Resident memory, MB of 2**20 bytes.")


class SystemUsage(BaseModel):
    cpu_count: int = Field(ge=1)
    cpu_percent: float = Field(ge=0, le=100, description="Busy share of all cores.")
    memory_mb: float = Field(ge=0, description="Memory in use (total minus available).")
    memory_total_mb: float = Field(ge=0)


class GpuUsage(BaseModel):
    index: int = Field(ge=0)
    name: str
    utilization_percent: float = Field(ge=0, le=100)
    memory_mb: float = Field(ge=0)
    memory_total_mb: float = Field(ge=0)


class ResourceUsage(BaseModel):
    process: ProcessUsage
    system: SystemUsage
    gpus: list[GpuUsage] = Field(description="One per NVIDIA device; empty without NVML.")
    window_seconds: float = Field(ge=0, description="The window CPU was measured over.")
