"""POST /api/search by text, through the local host with the real all-MiniLM-L6-v2: the
text is embedded by the named model and searched exactly as its vector would be."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.host import Host, register_minilm
from tests.support.pretrained import find_minilm

MINILM = find_minilm()
pytestmark = pytest.mark.skipif(MINILM is None, reason="MiniLM packages are not installed")

DOCS = {
    "doc-cat": ("A cat sleeps on the warm windowsill.", {"kind": "pets", "year": 2021}),
    "doc-dog": ("The dog chased a ball across the park.", {"kind": "pets", "year": 2019}),
    "doc-rates": (
        "Interest rates were raised by the bank.",
        {"kind": "news", "year": 2023},
    ),
    "doc-guitar": ("He plays guitar in a rock band.", {"kind": "music", "year": 2020}),
    "doc-stocks": ("Stock markets fell after the announcement.", {"kind": "news", "year": 2018}),
}


@pytest.fixture(scope="module")
def minilm(app_host: Host) -> str:
    """MiniLM registered, and the documents' vectors stored under its name with metadata."""
    register_minilm(app_host)
    texts = [text for text, _ in DOCS.values()]
    vectors = _embed(app_host, "minilm", texts)
    items = [
        {"entity_id": entity_id, "vector": vector, "metadata": meta}
        for (entity_id, (_, meta)), vector in zip(DOCS.items(), vectors, strict=True)
    ]
    reply = app_host.call("PUT", "/embeddings", {"model_id": "minilm", "items": items})
    assert reply.status == 200, reply.body
    return "minilm"


def _embed(host: Host, model: str, texts: list[str]) -> list[list[float]]:
    reply = host.call("POST", "/embeddings/text", {"model": model, "texts": texts})
    assert reply.status == 200, reply.body
    return reply.json()["vectors"]


def _search(host: Host, body: dict[str, Any]) -> list[dict[str, Any]]:
    reply = host.call("POST", "/search", body)
    assert reply.status == 200, reply.body
    return reply.json()["results"]


@pytest.mark.parametrize(
    "scope",
    [
        {"top_k": 5},
        {"top_k": 2, "metric": "euclidean", "model_id": "minilm"},
        {"top_k": 3, "filter": {"kind": {"$in": ["news", "music"]}}, "include_metadata": True},
        {"top_k": 3, "filter": {"year": {"$gte": 2020}}, "include_metadata": True},
    ],
)
def test_text_search_finds_what_the_texts_vector_finds(
    app_host: Host, minilm: str, scope: dict[str, Any]
) -> None:
    for text in ["a kitten napping by the window", "the bank raised rates"]:
        (vector,) = _embed(app_host, minilm, [text])
        by_vector = _search(app_host, {"vector": vector, **scope})
        by_text = _search(app_host, {"text": text, "model": minilm, **scope})
        assert by_text == by_vector
        assert by_text, scope  # every scope above matches some rows
    # And the embedding is the named model's: the paraphrase ranks its document first.
    hits = _search(app_host, {"text": "a kitten napping by the window", "model": minilm})
    assert hits[0]["entity_id"] == "doc-cat"
    news = _search(
        app_host,
        {"text": "a kitten napping", "model": minilm, "filter": {"kind": "news"}, "top_k": 5},
    )
    assert {h["entity_id"] for h in news} == {"doc-rates", "doc-stocks"}


def _error(host: Host, body: dict[str, Any], status: int) -> dict[str, Any]:
    reply = host.call("POST", "/search", body)
    assert reply.status == status, (body, reply.body)
    return reply.json()["error"]


def test_text_search_errors_name_the_field(app_host: Host, minilm: str) -> None:
    error = _error(app_host, {"text": "hello", "model": "no-such-model"}, 404)
    assert error["field"] == "model" and error["code"] == "model_not_found"
    # Too long a query is refused, not cut (the reply could not say it was cut).
    error = _error(app_host, {"text": "word " * 600, "model": minilm}, 400)
    assert error["field"] == "text" and error["code"] == "context_length_exceeded"
    assert error["message"].startswith("text: ") and "at most" in error["message"]
    for body, field in [
        ({"text": "hello", "vector": [1.0, 0.0], "model": minilm}, "text"),
        ({"text": "hello", "vectors": [[1.0, 0.0]], "model": minilm}, "text"),
        ({"vector": [1.0, 0.0], "vectors": [[1.0, 0.0]]}, "vectors"),
        ({"model": minilm}, "vector"),
    ]:
        error = _error(app_host, body, 400)
        assert error["field"] == field, (body, error)
        assert "exactly one of 'vector' or 'vectors' or 'text'" in error["message"]
    error = _error(app_host, {"text": "hello"}, 400)
    assert error["field"] == "model" and "required with 'text'" in error["message"]
    error = _error(app_host, {"vector": [1.0, 0.0], "model": minilm}, 400)
    assert error["field"] == "model" and "only with 'text'" in error["message"]
    error = _error(app_host, {"text": "", "model": minilm}, 400)
    assert error["field"] == "text"
