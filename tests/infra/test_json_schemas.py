"""host.json and local.settings.sample.json validate against their schemas (strict about
names and types: a misspelt host.json option is silently ignored by the host)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from shared.settings import ROOT

SCHEMAS = Path(__file__).parent / "schemas"


def _check(document: object, schema_file: str) -> None:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)


def test_host_json_is_valid() -> None:
    _check(json.loads((ROOT / "host.json").read_text()), "host.schema.json")


def test_local_settings_sample_is_valid() -> None:
    _check(
        json.loads((ROOT / "local.settings.sample.json").read_text()), "local-settings.schema.json"
    )


@pytest.mark.parametrize(
    "broken",
    [
        {"version": "2.0", "extensions": {"queues": {"maxDequeueCount": "5"}}},
        {"version": "2.0", "extensions": {"queues": {"visibiltyTimeout": "00:00:05"}}},
        {"version": "2.0", "extensions": {"queues": {"messageEncoding": "utf8"}}},
        {"version": "2.0", "functionTimeout": "10 minutes"},
    ],
)
def test_the_host_schema_catches_typos_and_wrong_types(broken: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        _check(broken, "host.schema.json")


def test_the_settings_schema_refuses_non_string_values() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())
    sample["Values"]["MAX_SESSIONS"] = 4
    with pytest.raises(jsonschema.ValidationError):
        _check(sample, "local-settings.schema.json")
