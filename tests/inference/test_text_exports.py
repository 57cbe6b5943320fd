"""Text embedding models as exported in the wild: the embedding output is chosen by type
and shape, names break ties, a registration may name it, and a model that cannot embed
text says why (a 4xx kind), never a 500."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.inference.embedder import EmbeddingModelError, TextEmbedder
from shared.inference.embedding_outputs import choose_output
from tests.support.text_exports import expected, write_export, write_tokenizer

TEXTS = ["a cat sleeps on the mat", "the bank rates rise a cat"]  # six words each


@pytest.fixture
def tokenizer(tmp_path: Path) -> Path:
    return write_tokenizer(tmp_path / "tokenizer.json")


@pytest.mark.parametrize(
    ("outputs", "chosen", "pooled"),
    [
        (["ids", "mask", "token_embeddings", "sentence_embedding"], "sentence_embedding", True),
        (["sentence_embedding", "token_embeddings"], "sentence_embedding", True),
        (["last_hidden_state"], "last_hidden_state", False),
        (["ids", "last_hidden_state"], "last_hidden_state", False),
        (["tokens_b", "token_embeddings"], "token_embeddings", False),  # the name breaks the tie
    ],
)
def test_the_embedding_output_is_found_by_type_shape_and_name(
    tmp_path: Path, tokenizer: Path, outputs: list[str], chosen: str, pooled: bool
) -> None:
    model = write_export(tmp_path / "m.onnx", outputs)
    embedder = TextEmbedder(model, tokenizer)
    assert embedder._output == chosen and embedder._pooled is pooled
    got = embedder.embed(TEXTS)
    np.testing.assert_allclose(got, expected(TEXTS), rtol=1e-5, atol=1e-6)
    assert embedder.dimension == 8


def test_an_ambiguous_export_needs_its_output_named(tmp_path: Path, tokenizer: Path) -> None:
    model = write_export(tmp_path / "m.onnx", ["tokens_b", "pooled_b", "sentence_embedding"])
    assert TextEmbedder(model, tokenizer)._output == "sentence_embedding"
    ambiguous = write_export(tmp_path / "a.onnx", ["ids", "tokens_b", "last_hidden_state", "x"])
    assert TextEmbedder(ambiguous, tokenizer)._output == "x"  # the one pooled output
    clash = write_export(tmp_path / "clash.onnx", ["ids", "pooled_b", "y"])
    with pytest.raises(EmbeddingModelError, match="several outputs.*embedding_output"):
        TextEmbedder(clash, tokenizer)
    named = TextEmbedder(clash, tokenizer, output="pooled_b")
    np.testing.assert_allclose(named.embed(TEXTS), expected(TEXTS), rtol=1e-5, atol=1e-6)


def test_a_model_that_cannot_embed_text_says_why(tmp_path: Path, tokenizer: Path) -> None:
    only_ints = write_export(tmp_path / "ints.onnx", ["ids", "mask"])
    with pytest.raises(EmbeddingModelError, match="no float") as err:
        TextEmbedder(only_ints, tokenizer)
    assert "'ids' tensor(int64)" in err.value.reason
    from shared.http.errors import reply_for

    assert reply_for(err.value, "embed_text").status == 422
    model = write_export(tmp_path / "m.onnx", ["ids", "token_embeddings"])
    with pytest.raises(EmbeddingModelError, match="cannot be a text embedding"):
        TextEmbedder(model, tokenizer, output="ids")
    with pytest.raises(EmbeddingModelError, match="has no output 'nope'"):
        TextEmbedder(model, tokenizer, output="nope")


def test_choose_output_reads_only_names_types_and_shapes() -> None:
    class Node:
        def __init__(self, name: str, type_: str, shape: list) -> None:
            self.name, self.type, self.shape = name, type_, shape

    picked = choose_output(
        [Node("a", "tensor(int64)", ["b", "s"]), Node("h", "tensor(float16)", ["b", "s", 384])]
    )
    assert (picked.name, picked.pooled, picked.hidden) == ("h", False, 384)
