"""Third-party text-embedding exports through the real host: a sentence-transformers
style export (int64 echoes first, token embeddings, then a pooled sentence embedding)
embeds text; an ambiguous one answers a 4xx that says to name the output, and works once
the registration names it; a named output the model lacks fails the registration."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.host import Host, upload_blob, wait_for_model
from tests.support.text_exports import expected, write_export, write_tokenizer

TEXTS = ["a cat sleeps on the mat", "the bank rates rise a cat"]


def _register(host: Host, tmp: Path, name: str, outputs: list[str], query: str = "") -> dict:
    upload_blob(host, f"{name}.tokenizer.json", write_tokenizer(tmp / f"{name}.json").read_bytes())
    data = write_export(tmp / f"{name}.onnx", outputs).read_bytes()
    reply = host.call("POST", f"/models?name={name}{query}", raw=data)
    assert reply.status == 202, reply.body
    return wait_for_model(host, name)


def test_a_sentence_transformers_export_embeds_text(app_host: Host, tmp_path: Path) -> None:
    model = _register(
        app_host, tmp_path, "st-export", ["ids", "mask", "token_embeddings", "sentence_embedding"]
    )
    assert model["status"] == "ready", model
    reply = app_host.call("POST", "/embeddings/text", {"model": "st-export", "texts": TEXTS})
    assert reply.status == 200, reply.body
    got = np.asarray(reply.json()["vectors"], dtype=np.float32)
    np.testing.assert_allclose(got, expected(TEXTS), rtol=1e-5, atol=1e-6)


def test_an_ambiguous_export_is_a_4xx_until_its_output_is_named(
    app_host: Host, tmp_path: Path
) -> None:
    _register(app_host, tmp_path, "clash-export", ["ids", "pooled_b", "y"])
    reply = app_host.call("POST", "/embeddings/text", {"model": "clash-export", "texts": TEXTS})
    assert reply.status == 422, reply.body
    assert "embedding_output" in reply.json()["error"]["message"]
    named = _register(
        app_host, tmp_path, "clash-named", ["ids", "pooled_b", "y"], "&embedding_output=pooled_b"
    )
    assert named["status"] == "ready" and named["metadata"]["embedding_output"] == "pooled_b"
    reply = app_host.call("POST", "/embeddings/text", {"model": "clash-named", "texts": TEXTS})
    assert reply.status == 200, reply.body
    np.testing.assert_allclose(reply.json()["vectors"], expected(TEXTS), rtol=1e-5, atol=1e-6)


def test_naming_an_output_the_model_lacks_fails_the_registration(
    app_host: Host, tmp_path: Path
) -> None:
    model = _register(
        app_host, tmp_path, "wrong-name", ["ids", "token_embeddings"], "&embedding_output=nope"
    )
    assert model["status"] == "failed"
    assert "embedding_output 'nope' is not an output of the model" in model["error"]
