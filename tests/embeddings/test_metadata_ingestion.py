"""The embeddings job carries metadata from `.jsonl` lines, on real Azurite and SQLite;
a line whose metadata a row cannot hold fails the job, naming the line."""

from __future__ import annotations

import io
import json

import pytest

from shared.embeddings.ingestion import EmbeddingsIngestion
from shared.embeddings.shapes import EmbeddingsPayload
from shared.jobs.runner import PermanentJobError


def _upload(container, name: str, lines: list[dict]) -> None:
    data = "\n".join(json.dumps(line) for line in lines).encode()
    container.upload(name, io.BytesIO(data))


def test_jsonl_lines_carry_their_metadata(store, container) -> None:
    lines = [
        {"entity_id": "a", "vector": [1, 0, 0], "metadata": {"lang": "en", "n": 1}},
        {"entity_id": "b", "vector": [0, 1, 0]},
        {"entity_id": "c", "vector": [0, 0, 1], "metadata": {"tags": ["x", "y"]}},
    ]
    _upload(container, "rows.jsonl", lines)
    job = EmbeddingsIngestion(store, container, 10**6)
    payload = EmbeddingsPayload(model_id="m-jsonl", blob="rows.jsonl")
    assert job("j1", payload) == {"rows": 3, "inserted": 3, "updated": 0}
    assert store.get("a", "m-jsonl", "default")[0].metadata == {"lang": "en", "n": 1}
    assert store.get("b", "m-jsonl", "default")[0].metadata is None
    assert store.get("c", "m-jsonl", "default")[0].metadata == {"tags": ["x", "y"]}


def test_a_line_with_bad_metadata_fails_the_job_naming_it(store, container) -> None:
    lines = [
        {"entity_id": "a", "vector": [1, 0]},
        {"entity_id": "b", "vector": [0, 1], "metadata": {"deep": {"x": 1}}},
    ]
    _upload(container, "bad.jsonl", lines)
    job = EmbeddingsIngestion(store, container, 10**6)
    with pytest.raises(PermanentJobError, match="line 2"):
        job("j2", EmbeddingsPayload(model_id="m-jsonl-bad", blob="bad.jsonl"))


def test_inline_items_carry_their_metadata(store, container) -> None:
    payload = EmbeddingsPayload.model_validate(
        {
            "model_id": "m-inline",
            "items": [
                {"entity_id": "a", "vector": [1, 2], "metadata": {"k": "v"}},
                {"entity_id": "b", "vector": [3, 4]},
            ],
        }
    )
    EmbeddingsIngestion(store, container, 10**6)("j3", payload)
    assert store.get("a", "m-inline", "default")[0].metadata == {"k": "v"}
    assert store.get("b", "m-inline", "default")[0].metadata is None
