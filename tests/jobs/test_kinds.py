"""Job kinds and statuses are declared once (shared/jobs/kinds.py); everything else follows."""

from __future__ import annotations

import json

import pytest

import function_app  # noqa: F401 - registers every route declaration
from shared.http import openapi
from shared.jobs.handlers import payload_shape, registered
from shared.jobs.kinds import UNKNOWN_KIND, JobKind, JobStatus
from shared.jobs.messages import MalformedMessageError, parse_message

KIND_VALUES = [k.value for k in JobKind]
STATUS_VALUES = [s.value for s in JobStatus]


def _enum(schema: dict) -> list[str]:
    """The enum of a property, looking through `anyOf: [..., null]`."""
    for option in schema.get("anyOf", [schema]):
        if "enum" in option:
            return option["enum"]
    raise AssertionError(f"no enum in {schema}")


def test_the_openapi_document_lists_the_declared_kinds_and_statuses() -> None:
    doc = openapi.build()
    schemas = doc["components"]["schemas"]
    assert _enum(schemas["JobSubmitRequest"]["properties"]["kind"]) == KIND_VALUES
    assert _enum(schemas["JobOut"]["properties"]["status"]) == STATUS_VALUES
    params = {p["name"]: p for p in doc["paths"]["/jobs"]["get"]["parameters"]}
    assert _enum(params["status"]["schema"]) == STATUS_VALUES
    assert _enum(params["kind"]["schema"]) == [*KIND_VALUES, UNKNOWN_KIND]


def test_every_kind_has_a_payload_class_and_parses() -> None:
    """function_app.py registers every kind (tests/conftest.py imports it, as the worker does)."""
    assert registered() == set(JobKind)
    assert all(payload_shape(kind) is not None for kind in JobKind)
    for kind in JobKind:
        body = json.dumps({"job_id": "j", "kind": kind.value, "payload": {}})
        with pytest.raises(MalformedMessageError) as err:  # an empty payload: the kind's rules
            parse_message(body)
        assert err.value.kind == kind and "unknown job kind" not in err.value.reason


def test_a_kind_outside_the_enum_is_refused_naming_the_declared_ones() -> None:
    body = json.dumps({"job_id": "j", "kind": "bake", "payload": {}})
    with pytest.raises(MalformedMessageError) as err:
        parse_message(body)
    assert err.value.reason.endswith("expected one of " + ", ".join(KIND_VALUES))


def test_model_statuses_are_declared_once_too() -> None:
    from shared.registry.status import ModelStatus

    doc = openapi.build()
    values = [s.value for s in ModelStatus]
    assert _enum(doc["components"]["schemas"]["ModelOut"]["properties"]["status"]) == values
    params = {p["name"]: p for p in doc["paths"]["/models"]["get"]["parameters"]}
    assert _enum(params["status"]["schema"]) == values
