"""The Open Inference Protocol's model repository and statistics extensions, in the
shapes Triton gives them, so tools written for Triton read this app's models and counts.

- `POST v2/repository/index`: every registered version with its state (READY, LOADING
  while it is registered or ingesting, UNAVAILABLE with the reason when it failed).
- `GET v2/models/{name}[/versions/{v}]/stats`: per version, executions (calls) and
  inferences (rows), success and failure counts with their total time in nanoseconds,
  and the last inference (epoch ms), from the inference log the analytics read.
"""

from __future__ import annotations

from typing import Any

from shared.inference.repository import InferenceLogRepository
from shared.registry.errors import ModelNotFoundError
from shared.registry.repository import ModelRepository

_STATES = {"ready": "READY", "registered": "LOADING", "ingesting": "LOADING"}
_ZERO = {"count": 0, "ns": 0}


def repository_index(models: ModelRepository, *, ready_only: bool = False) -> list[dict[str, Any]]:
    out = []
    for record in models.list(limit=100_000):
        state = _STATES.get(record.status, "UNAVAILABLE")
        if ready_only and state != "READY":
            continue
        out.append(
            {
                "name": record.name,
                "version": str(record.version),
                "state": state,
                "reason": record.error or "" if state == "UNAVAILABLE" else "",
            }
        )
    return out


def model_stats(
    models: ModelRepository, log: InferenceLogRepository, name: str, version: int | None
) -> dict[str, Any]:
    versions = [r.version for r in models.list(name=name, limit=100_000)]
    if not versions:
        raise ModelNotFoundError(f"model {name!r} is not registered", field="name")
    if version is not None:
        if version not in versions:
            raise ModelNotFoundError(f"model {name!r} has no version {version}", field="version")
        versions = [version]
    per_version: dict[int, dict[str, Any]] = {
        v: {"success": dict(_ZERO), "fail": dict(_ZERO), "calls": 0, "rows": 0, "last": 0}
        for v in versions
    }
    for row in log.stats_by_version(name):
        entry = per_version.get(row["version"])
        if entry is None:
            continue
        key = "success" if row["outcome"] == "succeeded" else "fail"
        entry[key] = {
            "count": entry[key]["count"] + row["calls"],
            "ns": entry[key]["ns"] + round(row["total_ms"] * 1e6),
        }
        entry["calls"] += row["calls"]
        entry["rows"] += row["rows"] if key == "success" else 0
        entry["last"] = max(entry["last"], row["last_ms"])
    return {
        "model_stats": [
            {
                "name": name,
                "version": str(v),
                "last_inference": e["last"],
                "inference_count": e["rows"],
                "execution_count": e["calls"],
                "inference_stats": {
                    "success": e["success"],
                    "fail": e["fail"],
                    "queue": dict(_ZERO),
                    "compute_input": dict(_ZERO),
                    "compute_infer": dict(_ZERO),
                    "compute_output": dict(_ZERO),
                },
                "batch_stats": [],
            }
            for v, e in sorted(per_version.items())
        ]
    }
