"""The queue message schema: what runs, and the reason for what cannot."""

import json

import pytest

from shared.embeddings.shapes import (
    EmbeddingsPayload,
    EmbeddingUpsertRequest,
    EmbedTextPayload,
    TextEmbedStore,
)
from shared.jobs.messages import JobMessage, MalformedMessageError, parse_message


def test_a_valid_message_parses_with_its_typed_payload() -> None:
    body = json.dumps(
        {
            "job_id": "j-1",
            "kind": "embeddings",
            "schema_version": 1,
            "payload": {"model_id": "m", "items": [{"entity_id": "a", "vector": [1, 2]}]},
        }
    )
    message, payload = parse_message(body)
    assert message.job_id == "j-1" and isinstance(payload, EmbeddingsPayload)
    assert payload.embedding_type == "default" and payload.items[0].vector == [1.0, 2.0]


def test_every_way_in_stores_vectors_under_one_default_embedding_type() -> None:
    body = json.dumps(
        {
            "job_id": "t-1",
            "kind": "embed_text",
            "payload": {"model": "minilm", "texts": ["x"], "entity_ids": ["a"]},
        }
    )
    _, payload = parse_message(body)
    assert isinstance(payload, EmbedTextPayload) and payload.embedding_type == "default"
    # PUT /api/embeddings and POST /api/embeddings/text write the same sets.
    for shape in (EmbeddingsPayload, EmbedTextPayload, EmbeddingUpsertRequest, TextEmbedStore):
        assert shape.model_fields["embedding_type"].default == "default", shape.__name__


def test_round_trip_of_a_message() -> None:
    msg = JobMessage(job_id="x", kind="model", payload={"version_id": "m1"})
    again, payload = parse_message(msg.to_json())
    assert again == msg and payload.version_id == "m1"


@pytest.mark.parametrize(
    ("body", "reason", "job_id"),
    [
        ("not json", "message is not JSON", None),
        ("[1, 2]", "must be a JSON object", None),
        ('{"job_id": "a", "kind": "bake", "payload": {}}', "unknown job kind 'bake'", "a"),
        ('{"job_id": "a", "kind": "model"}', "payload: required field is missing", "a"),
        ('{"job_id": "a", "kind": "model", "payload": {}}', "payload.version_id: required", "a"),
        (
            '{"job_id": "a", "kind": "model", "payload": {"version_id": "m"}, "schema_version": 9}',
            "schema_version: 9 is not supported",
            "a",
        ),
        (
            '{"job_id": "a", "kind": "embeddings", "payload": {"model_id": "m"}}',
            "exactly one of 'items' or 'blob'",
            "a",
        ),
        (
            '{"job_id": "a", "kind": "embed_text", "payload": '
            '{"model": "m", "texts": ["x", "y"], "entity_ids": ["1"]}}',
            "texts has 2 items but entity_ids has 1",
            "a",
        ),
        (  # an invalid id names no row (GET jobs/{id} could not reach "../x")
            '{"job_id": "../x", "kind": "model", "payload": {"version_id": "m"}}',
            "job_id",
            None,
        ),
    ],
)
def test_malformed_messages_say_why(body: str, reason: str, job_id: str | None) -> None:
    with pytest.raises(MalformedMessageError) as err:
        parse_message(body)
    assert reason in err.value.reason
    assert err.value.job_id == job_id


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e39"])
def test_a_vector_that_is_not_finite_float32_is_malformed_naming_the_element(token: str) -> None:
    """Python's json reads NaN/Infinity tokens and 1e39 overflows float32: unchecked, each
    passes as a float, fails later in the job, and makes replies that echo it invalid JSON."""
    body = (
        '{"job_id": "nan-1", "kind": "embeddings", "payload": {"model_id": "m", '
        f'"items": [{{"entity_id": "a", "vector": [1, {token}]}}]}}}}'
    )
    with pytest.raises(MalformedMessageError) as exc:
        parse_message(body)
    assert exc.value.reason.startswith("payload.items.0.vector.1: NaN, infinite or outside")
    assert exc.value.job_id == "nan-1"
