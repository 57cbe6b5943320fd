"""schemathesis stateful runs over the OpenAPI document against the real app on the local
host: sequences of calls that feed each other (a job submitted then read and retried,
vectors stored then read and deleted), with the links schemathesis infers from the
document plus the ones declared here.

Checks on every step: no 5xx; a resource a call said it created can be read
(`ensure_resource_availability`); one a call deleted is gone (`use_after_free`).
Bounded and derandomized in `make test`; `make fuzz` sets FUZZ_EXAMPLES.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ensure_resource_availability, use_after_free

import function_app  # noqa: F401 - registers every route declaration
from shared.http import openapi
from tests.support.host import Host, wait_for_job

FUZZING = "FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
STEPS = 12 if FUZZING else 6
CHECKS = [not_a_server_error, ensure_resource_availability, use_after_free]

#: (source operation, status, link name, target operationId, parameters)
LINKS: list[tuple[str, str, str, str, str, dict[str, str]]] = [
    (
        "/embeddings",
        "put",
        "200",
        "ReadStored",
        "get_embeddings",
        {
            "path.entity_id": "$request.body#/items/0/entity_id",
            "query.model_id": "$response.body#/model_id",
        },
    ),
    (
        "/embeddings",
        "put",
        "200",
        "DeleteStored",
        "delete_embeddings",
        {
            "path.entity_id": "$request.body#/items/0/entity_id",
            "query.model_id": "$response.body#/model_id",
        },
    ),
    # PUT is never where schemathesis starts a run (POST and list GETs are): reach it
    # from a search, as a client that found nothing stores vectors and searches again.
    ("/search", "post", "200", "StoreVectors", "upsert_embeddings", {}),
    ("/jobs", "post", "202", "ReadJob", "get_job", {"path.job_id": "$response.body#/id"}),
    ("/jobs", "post", "202", "RetryJob", "retry_job", {"path.job_id": "$response.body#/id"}),
    (
        "/jobs",
        "get",
        "200",
        "ReadListedJob",
        "get_job",
        {"path.job_id": "$response.body#/jobs/0/id"},
    ),
    (
        "/models",
        "get",
        "200",
        "ReadListedModel",
        "get_model",
        {"path.version_id": "$response.body#/models/0/id"},
    ),
]


def with_links(doc: dict[str, Any]) -> dict[str, Any]:
    """The app's document with OpenAPI links between the operations that feed each other."""
    ids = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    for path, method, status, name, target, params in LINKS:
        assert target in ids, f"{target} is not an operation of the document"
        response = doc["paths"][path][method]["responses"][status]
        response.setdefault("links", {})[name] = {"operationId": target, "parameters": params}
    return doc


def test_every_declared_link_joins_two_operations() -> None:
    """The links name real operations and parameters (a renamed route breaks this first)."""
    doc = with_links(openapi.build())
    for path, method, status, name, target, _ in LINKS:
        link = doc["paths"][path][method]["responses"][status]["links"][name]
        target_op = next(
            op for p in doc["paths"].values() for op in p.values() if op["operationId"] == target
        )
        declared = {f"{p['in']}.{p['name']}" for p in target_op["parameters"]}
        assert set(link["parameters"]) <= declared, (name, declared)


def test_stateful_sequences_make_no_server_error_and_keep_resources_consistent(
    app_host: Host,
) -> None:
    # A failed job for the list -> read -> retry chains to start from.
    seed = {"kind": "model", "job_id": "stateful-seed", "payload": {"version_id": "none"}}
    assert app_host.call("POST", "/jobs", seed).status == 202
    assert wait_for_job(app_host, "stateful-seed")["status"] == "failed"
    schema = schemathesis.openapi.from_dict(with_links(openapi.build()))
    # Valid requests only: sequences need calls that succeed to feed the next one
    # (test_app_openapi.py sends the invalid ones, one call at a time).
    schema.config.generation.update(modes=["positive"])
    # Only the links declared above: the inferred ones guess (a model id as an entity id)
    # and, as incoming links, kept operations such as PUT embeddings from starting a run.
    schema.config.phases.stateful.inference.algorithms = []
    machine = schema.as_state_machine()
    seen: Counter[str] = Counter()

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            seen[f"{case.operation.label} {response.status_code}"] += 1
            if response.status_code == 400 and os.environ.get("SHOW400"):
                print(
                    "400",
                    case.operation.label,
                    case.query,
                    case.path_parameters,
                    str(case.body)[:200],
                    response.text[:200],
                )

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {
                "base_url": app_host.base_url,
                "headers": {"x-functions-key": app_host.key},
                "timeout": 30,
            }

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(
                response, checks=CHECKS, transport_kwargs=kwargs, recorder=self.recorder
            )

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=not FUZZING,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    assert app_host.call("GET", "/health", key=None).status == 200
    assert sum(seen.values()) >= EXAMPLES
    # the links fed real ids forward: a listed job was read back by its id
    assert seen["GET /jobs/{job_id} 200"] > 0, seen
