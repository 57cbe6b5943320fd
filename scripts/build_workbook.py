"""Writes infra/monitoring/workbook.json from the .kql files beside it, so the workbook
and the queries cannot drift apart (a test compares the committed file with this).

    python scripts/build_workbook.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "infra" / "monitoring"
QUERIES = MONITORING / "queries"
WORKBOOK = MONITORING / "workbook.json"

COMPONENT = "microsoft.insights/components"  # queries run against Application Insights

# (query file, title, visualization, width in percent)
SECTIONS: tuple[tuple[str, str, str, int], ...] = (
    ("inference_latency_percentiles.kql", "Inference latency percentiles by model", "table", 100),
    ("inference_latency_over_time.kql", "p95 inference latency over time", "timechart", 50),
    ("model_performance_over_time.kql", "Model performance over time", "table", 50),
    ("error_rates_by_model.kql", "Error rate by model (%)", "timechart", 100),
    ("resource_cpu.kql", "CPU (%)", "timechart", 50),
    ("resource_memory.kql", "Memory (MB)", "timechart", 50),
)

TIME_RANGE: dict[str, Any] = {
    "id": "4d3a2b7e-1c55-4e0b-9a6e-2f0c8e1d7a10",
    "version": "KqlParameterItem/1.0",
    "name": "TimeRange",
    "label": "Time range",
    "type": 4,
    "isRequired": True,
    "value": {"durationMs": 86400000},
    "typeSettings": {
        "allowCustom": True,
        "selectableValues": [
            {"durationMs": ms} for ms in (3600000, 14400000, 86400000, 259200000, 604800000)
        ],
    },
}


def query_text(file: str) -> str:
    return (QUERIES / file).read_text().strip() + "\n"


def chart(file: str, title: str, visualization: str, width: int) -> dict[str, Any]:
    content: dict[str, Any] = {
        "version": "KqlItem/1.0",
        "query": query_text(file),
        "size": 0,
        "title": title,
        "timeContextFromParameter": "TimeRange",
        "queryType": 0,
        "resourceType": COMPONENT,
        "visualization": visualization,
    }
    return {
        "type": 3,
        "content": content,
        "customWidth": str(width),
        "name": file.removesuffix(".kql"),
    }


def build() -> dict[str, Any]:
    header = (
        "## Hartonomous inference and resources\n"
        "Inference latency from the ONNX dependency spans, model performance and error "
        "rates from the app's metrics, and the CPU / memory / GPU gauges. Queries: "
        "`infra/monitoring/queries/`."
    )
    items: list[dict[str, Any]] = [
        {"type": 1, "content": {"json": header}, "name": "title"},
        {
            "type": 9,
            "content": {
                "version": "KqlParameterItem/1.0",
                "parameters": [TIME_RANGE],
                "style": "pills",
                "queryType": 0,
                "resourceType": COMPONENT,
            },
            "name": "parameters",
        },
    ]
    items += [chart(*section) for section in SECTIONS]
    return {
        "version": "Notebook/1.0",
        "items": items,
        "fallbackResourceIds": [],
        "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json",
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    WORKBOOK.write_text(render())
    print(f"wrote {WORKBOOK.relative_to(ROOT)}")
