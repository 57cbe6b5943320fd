"""infra/monitoring: the KQL queries and the workbook read only names the code emits,
the workbook is valid JSON built from the queries, and each query passes the
structural KQL check (tests/monitoring/kql.py)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from shared.settings import ROOT
from shared.telemetry import BY_NAME
from tests.monitoring.kql import check

MONITORING = ROOT / "infra" / "monitoring"
QUERIES = sorted((MONITORING / "queries").glob("*.kql"))
METRIC = re.compile(r"hartonomous\.[a-z0-9_.]*[a-z0-9_]")
DIMENSION = re.compile(r"customDimensions\[\"([^\"]+)\"\]|customDimensions\.([A-Za-z_]\w*)")


def _builder():
    path = ROOT / "scripts" / "build_workbook.py"
    spec = importlib.util.spec_from_file_location("build_workbook", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_four_dashboards_of_the_plan_have_queries() -> None:
    names = {q.stem for q in QUERIES}
    assert {
        "inference_latency_percentiles",
        "model_performance_over_time",
        "error_rates_by_model",
        "resource_cpu",
        "resource_memory",
    } <= names


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.name)
def test_each_query_passes_the_structural_kql_check(query: Path) -> None:
    tables = check(query.read_text())
    assert tables[0] in ("dependencies", "customMetrics")


@pytest.mark.parametrize(
    "broken",
    [
        "customMetrics | where (name == 'a'",
        "customMetrics | summarise count()",
        "customMetrics | summarize percentil(value, 95)",
        "customMetrics | where name == 'a",
        "customMetric | take 1",
        "customMetrics || take 1",
        "customMetrics | order value",
    ],
)
def test_the_check_catches_broken_queries(broken: str) -> None:
    assert check("customMetrics | where (name == 'a') | order by value") == ["customMetrics"]
    with pytest.raises(SyntaxError):
        check(broken)


def test_every_metric_name_used_is_declared_in_shared_telemetry() -> None:
    texts = {q.name: q.read_text() for q in QUERIES}
    texts["workbook.json"] = (MONITORING / "workbook.json").read_text()
    used = set()
    for name, text in texts.items():
        for metric in METRIC.findall(text):
            assert metric in BY_NAME, f"{name} reads {metric}, which the code does not emit"
            used.add(metric)
    gauges = {i.name for i in BY_NAME.values() if i.kind == "gauge"}
    assert gauges <= used  # every resource gauge is on a chart
    assert {"hartonomous.inference.duration", "hartonomous.inference.failures"} <= used


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.name)
def test_dimensions_read_are_attributes_of_the_metrics_read(query: Path) -> None:
    text = query.read_text()
    metrics = set(METRIC.findall(text))
    declared = {a for m in metrics for a in BY_NAME[m].attributes}
    for bracket, dotted in DIMENSION.findall(text):
        assert (bracket or dotted) in declared, f"{query.name}: {bracket or dotted}"
    if "dependencies" in check(text):
        assert 'type == "ONNX"' in text  # the inference dependency spans


def test_workbook_is_valid_json_built_from_the_queries() -> None:
    builder = _builder()
    committed = (MONITORING / "workbook.json").read_text()
    workbook = json.loads(committed)
    assert committed == builder.render(), "run: python scripts/build_workbook.py"
    assert workbook["version"] == "Notebook/1.0"
    params = [
        p["name"]
        for item in workbook["items"]
        if item["type"] == 9
        for p in item["content"]["parameters"]
    ]
    assert "TimeRange" in params
    charts = [item["content"] for item in workbook["items"] if item["type"] == 3]
    in_workbook = sorted(c["query"].strip() for c in charts)
    assert in_workbook == sorted(q.read_text().strip() for q in QUERIES)
    for content in charts:
        assert content["version"] == "KqlItem/1.0"
        assert content["timeContextFromParameter"] == "TimeRange"
        assert content["resourceType"] == "microsoft.insights/components"
        assert content["visualization"] in ("table", "timechart", "barchart")
