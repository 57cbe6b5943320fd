"""Text embedding through the local host with the real all-MiniLM-L6-v2 (int8 ONNX):
text in, a stored, searchable vector out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.host import Host, register_minilm, upload_blob, wait_for_job, wait_for_model
from tests.support.models import write_classifier
from tests.support.pretrained import find_minilm

MINILM = find_minilm()
pytestmark = pytest.mark.skipif(MINILM is None, reason="MiniLM packages are not installed")


@pytest.fixture(scope="module")
def minilm(app_host: Host) -> str:
    return register_minilm(app_host)


def test_paraphrases_score_higher_than_unrelated_sentences(app_host: Host, minilm: str) -> None:
    texts = [
        "A man is playing a guitar.",
        "Someone is strumming an acoustic guitar.",
        "The central bank raised interest rates again.",
    ]
    reply = app_host.call("POST", "/embeddings/text", {"model": minilm, "texts": texts})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["dimension"] == 384 and body["model_version"] == 1
    v = np.asarray(body["vectors"], dtype=np.float32)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_stored_text_embeddings_are_found_by_search(app_host: Host, minilm: str) -> None:
    docs = {
        "doc-cat": "A cat sleeps on the warm windowsill.",
        "doc-rates": "Interest rates were raised by the central bank.",
        "doc-guitar": "He plays guitar in a rock band.",
    }
    reply = app_host.call(
        "POST",
        "/embeddings/text",
        {
            "model": minilm,
            "texts": list(docs.values()),
            "store": {"entity_ids": list(docs)},  # the default type, as PUT /embeddings
        },
    )
    assert reply.status == 200 and reply.json()["stored"] == {"inserted": 3, "updated": 0}
    query = app_host.call(
        "POST", "/embeddings/text", {"model": minilm, "texts": ["a kitten napping by the window"]}
    ).json()["vectors"][0]
    hits = app_host.call(
        "POST",
        "/search",
        {
            "vector": query,
            "top_k": 3,
            "metric": "cosine",
            "model_id": minilm,
            "embedding_type": "default",
        },
    ).json()["results"]
    assert hits[0]["entity_id"] == "doc-cat"
    assert hits[0]["similarity"] > hits[1]["similarity"]


def test_embed_text_job_stores_vectors(app_host: Host, minilm: str) -> None:
    reply = app_host.call(
        "POST",
        "/jobs",
        {
            "kind": "embed_text",
            "payload": {
                "model": minilm,
                "texts": ["first queued text", "second queued text"],
                "entity_ids": ["q-1", "q-2"],
            },
        },
    )
    assert reply.status == 202
    job = wait_for_job(app_host, reply.json()["id"], timeout=120)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"rows": 2, "inserted": 2, "updated": 0}
    got = app_host.call("GET", f"/embeddings/q-1?model_id={minilm}").json()["embeddings"]
    assert got[0]["dimension"] == 384 and got[0]["embedding_type"] == "default"


def test_unknown_and_not_ready_models_are_clear(app_host: Host, tmp_path: Path) -> None:
    reply = app_host.call("POST", "/embeddings/text", {"model": "nope", "texts": ["x"]})
    assert reply.status == 404 and reply.json()["error"]["field"] == "model"
    assert reply.json()["error"]["code"] == "model_not_found"
    # A ready model with no tokenizer beside it cannot embed text yet: a 409 saying why.
    upload_blob(app_host, "iris-text.onnx", write_classifier(tmp_path).read_bytes())
    assert wait_for_model(app_host, "iris-text")["status"] == "ready"
    reply = app_host.call("POST", "/embeddings/text", {"model": "iris-text", "texts": ["x"]})
    error = reply.json()["error"]
    assert reply.status == 409 and error["code"] == "model_not_ready"
    assert error["field"] == "model" and "upload iris-text.tokenizer.json" in error["message"]
