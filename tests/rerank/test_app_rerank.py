"""POST /api/v1/rerank through the local host: cross-encoders built here, uploaded with
their tokenizers to the models container as a user does, registered by the blob trigger,
called with ``Authorization: Bearer <key>`` as rerank clients send it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.rerank.crossencoders import (
    bare_logits,
    expected_scores,
    write_cross_encoder,
    write_tokenizer,
)
from tests.support.host import KEY, Host, upload_blob, wait_for_model

LIMIT = 24  # the tokenizer file's truncation length
QUERY = "cat on the mat"
DOCUMENTS = [
    "the cat sleeps on the mat",
    "money interest rates rise",
    "a dog runs in the park",
    "the river bank",
    "fish water boat river sun rain cloud green tree bird",
]
BEARER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def models(app_host: Host, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Name -> ONNX file of two ready cross-encoders: one logit with segment ids, and two
    logits without (each declares what it reads), sharing one tokenizer."""
    tmp = tmp_path_factory.mktemp("cross-encoders")
    tokenizer = write_tokenizer(tmp / "tokenizer.json", max_length=LIMIT)
    files = {
        "ce-one": write_cross_encoder(tmp / "ce-one.onnx", logits=1),
        "ce-two": write_cross_encoder(tmp / "ce-two.onnx", logits=2, token_type_ids=False),
    }
    for name, path in files.items():
        upload_blob(app_host, f"{name}.tokenizer.json", tokenizer.read_bytes())
        upload_blob(app_host, f"{name}.onnx", path.read_bytes())
    for name in files:
        assert wait_for_model(app_host, name)["status"] == "ready"
    files["tokenizer"] = tokenizer
    return files


def rerank(host: Host, body: dict, headers: dict[str, str] | None = BEARER):
    return host.call("POST", "/v1/rerank", body, key=None, headers=headers)


@pytest.mark.parametrize("name", ["ce-one", "ce-two"])
def test_ranks_as_bare_onnxruntime_in_cohere_shape(
    app_host: Host, models: dict[str, Path], name: str
) -> None:
    reply = rerank(app_host, {"model": name, "query": QUERY, "documents": DOCUMENTS})
    assert reply.status == 200, reply.body
    body = reply.json()
    want = expected_scores(bare_logits(models[name], models["tokenizer"], QUERY, DOCUMENTS, LIMIT))
    results = body["results"]
    assert [r["index"] for r in results] == np.argsort(-want, kind="stable").tolist()
    got = np.array([r["relevance_score"] for r in results])
    assert np.abs(got - want[[r["index"] for r in results]]).max() <= 1e-5
    assert all("document" not in r for r in results)  # return_documents defaults to false
    assert body["model"] == name and body["model_version"] == 1
    assert len(body["id"]) == 36
    meta = body["meta"]
    assert meta["billed_units"] == {"search_units": 1}
    assert meta["api_version"] == {"version": "2"}
    assert meta["max_tokens"] == LIMIT and meta["truncated_documents"] == []
    assert "warnings" not in meta
    # Each pair: [CLS] query [SEP] document [SEP], every document whole.
    assert meta["tokens"]["input_tokens"] == sum(4 + 3 + len(d.split()) for d in DOCUMENTS)


def test_top_n_and_return_documents(app_host: Host, models: dict[str, Path]) -> None:
    full = rerank(app_host, {"model": "ce-one", "query": QUERY, "documents": DOCUMENTS}).json()
    reply = rerank(
        app_host,
        {
            "model": "ce-one",
            "query": QUERY,
            "documents": DOCUMENTS,
            "top_n": 2,
            "return_documents": True,
        },
    )
    assert reply.status == 200, reply.body
    results = reply.json()["results"]
    assert [r["index"] for r in results] == [r["index"] for r in full["results"][:2]]
    assert [r["document"] for r in results] == [{"text": DOCUMENTS[r["index"]]} for r in results]
    scores = [r["relevance_score"] for r in full["results"]]
    assert scores == sorted(scores, reverse=True)


def test_a_cut_document_is_reported_and_a_too_long_query_refused(
    app_host: Host, models: dict[str, Path]
) -> None:
    long_doc = " ".join(["fish water boat river sun rain"] * 10)  # 60 tokens
    docs = ["the cat", long_doc]
    reply = rerank(app_host, {"model": "ce-one", "query": QUERY, "documents": docs})
    assert reply.status == 200, reply.body
    meta = reply.json()["meta"]
    kept = LIMIT - 4 - 3
    assert meta["truncated_documents"] == [{"index": 1, "tokens": 60, "kept_tokens": kept}]
    assert "1 of 2 documents were cut" in meta["warnings"][0]
    want = expected_scores(bare_logits(models["ce-one"], models["tokenizer"], QUERY, docs, LIMIT))
    got = {r["index"]: r["relevance_score"] for r in reply.json()["results"]}
    assert abs(got[1] - want[1]) <= 1e-5

    reply = rerank(
        app_host, {"model": "ce-one", "query": " ".join(["cat"] * LIMIT), "documents": docs}
    )
    assert reply.status == 400, reply.body
    error = reply.json()["error"]
    assert error["param"] == "query" and error["type"] == "invalid_request_error"
    assert f"limit of {LIMIT} tokens" in error["message"]


def test_a_key_is_needed_as_bearer(app_host: Host, models: dict[str, Path]) -> None:
    body = {"model": "ce-one", "query": QUERY, "documents": DOCUMENTS}
    for headers in (
        None,
        {"Authorization": "Bearer not-the-key"},
        {"Authorization": KEY},  # no scheme
        {"x-functions-key": KEY},  # the host's own header does not stand in for it
    ):
        reply = rerank(app_host, body, headers)
        assert reply.status == 401, (headers, reply.body)
        error = reply.json()["error"]
        assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
        assert KEY.encode() not in reply.body


def test_unknown_model_and_bad_input_name_the_field(
    app_host: Host, models: dict[str, Path]
) -> None:
    reply = rerank(app_host, {"model": "nope", "query": QUERY, "documents": DOCUMENTS})
    assert reply.status == 404
    assert reply.json()["error"]["param"] == "model"
    assert reply.json()["error"]["code"] == "model_not_found"

    cases = [
        ({"query": QUERY, "documents": ["x"]}, "model"),
        ({"model": "ce-one", "query": "", "documents": ["x"]}, "query"),
        ({"model": "ce-one", "query": QUERY, "documents": []}, "documents"),
        ({"model": "ce-one", "query": QUERY, "documents": ["x", 3]}, "documents[1]"),
        ({"model": "ce-one", "query": QUERY, "documents": ["x"] * 1001}, "documents"),
        ({"model": "ce-one", "query": QUERY, "documents": ["x" * 100_001]}, "documents[0]"),
        ({"model": "ce-one", "query": QUERY, "documents": ["x"], "top_n": 0}, "top_n"),
        (
            {"model": "ce-one", "query": QUERY, "documents": ["x"], "max_tokens_per_doc": 0},
            "max_tokens_per_doc",
        ),
        ({"model": "ce-one", "query": QUERY, "documents": ["x"], "rank_fields": []}, "rank_fields"),
    ]
    for body, field in cases:
        reply = rerank(app_host, body)
        assert reply.status == 400, (body, reply.body[:300])
        assert reply.json()["error"]["param"] == field, (field, reply.body[:300])

    reply = app_host.call("POST", "/v1/rerank", raw=b"{not json", key=None, headers={**BEARER})
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_json"


def test_each_call_is_an_inference_log_row(app_host: Host, models: dict[str, Path]) -> None:
    name = "ce-two"
    before = app_host.call("GET", f"/analytics/models/{name}").json()
    for documents in (DOCUMENTS[:3], DOCUMENTS):
        reply = rerank(app_host, {"model": name, "query": QUERY, "documents": documents})
        assert reply.status == 200, reply.body
    refused = rerank(
        app_host, {"model": name, "query": " ".join(["cat"] * 40), "documents": DOCUMENTS}
    )
    assert refused.status == 400
    after = app_host.call("GET", f"/analytics/models/{name}").json()
    assert after["count"] - before["count"] == 3
    assert after["failures"] - before["failures"] == 1
    assert after["rows"] - before["rows"] == 3 + len(DOCUMENTS)
