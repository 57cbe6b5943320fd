"""Each text model's token limit, where it comes from, and what happens at it: counted
uncut, cut with its special tokens kept, or refused naming the text. Real tokenizers
(all-MiniLM-L6-v2's file, word-level ones built here) and real ONNX graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.inference.embedder import (
    DEFAULT_MAX_TOKENS,
    EmbeddingModelError,
    TextEmbedder,
    TextTokenizer,
    TokenLimit,
    TooManyTokensError,
    fixed_input_length,
    position_table_size,
    read_tokenizer,
    token_limit,
)
from tests.support.models import save_graph
from tests.support.pretrained import find_minilm
from tests.support.text_exports import HIDDEN, WORDS, table, write_tokenizer

MINILM = find_minilm()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="MiniLM packages are not installed")
LONG = "The quarterly report showed revenue growth in every region but one. " * 30
CLS, SEP = 101, 102  # all-MiniLM-L6-v2's special tokens


@pytest.fixture
def plain(tmp_path: Path):
    """A word-level tokenizer whose file says no truncation and adds no special tokens."""
    return read_tokenizer(write_tokenizer(tmp_path / "tokenizer.json"))


def _minilm_tokenizer():
    assert MINILM is not None
    return read_tokenizer(MINILM[1])


def _never() -> list:
    raise AssertionError("the initializers were read though the limit was already known")


# -- where the limit comes from ----------------------------------------------------------


@needs_minilm
def test_the_registration_comes_first_then_the_tokenizer_file() -> None:
    tokenizer = _minilm_tokenizer()  # its file truncates at 128
    assert token_limit(tokenizer) == TokenLimit(128, "tokenizer")
    assert token_limit(tokenizer, registered="300") == TokenLimit(300, "registration")
    assert token_limit(tokenizer, registered=64, input_length=None) == TokenLimit(
        64, "registration"
    )


def test_then_a_fixed_input_then_the_position_table_then_512(plain) -> None:
    assert token_limit(plain, input_length=64, tensors=_never) == TokenLimit(64, "model_input")
    table_only = [("bert.embeddings.position_embeddings.weight", [384, 8])]
    assert token_limit(plain, tensors=lambda: table_only) == TokenLimit(384, "position_embeddings")
    assert token_limit(plain, tensors=lambda: [("E", [11, 8])]) == TokenLimit(512, "default")
    assert token_limit(plain) == TokenLimit(DEFAULT_MAX_TOKENS, "default")
    assert DEFAULT_MAX_TOKENS == 512


@needs_minilm
def test_what_the_model_can_take_lowers_a_larger_number() -> None:
    tokenizer = _minilm_tokenizer()
    table = lambda: [("position_embeddings.weight", [512, 384])]  # noqa: E731
    assert token_limit(tokenizer, registered=1000, tensors=table) == TokenLimit(
        512, "position_embeddings"
    )
    assert token_limit(tokenizer, registered=1000, input_length=256) == TokenLimit(
        256, "model_input"
    )
    # A smaller number stays: the file's 128 under a 512-row table.
    assert token_limit(tokenizer, tensors=table) == TokenLimit(128, "tokenizer")


def test_roberta_position_tables_start_after_the_padding_index(tmp_path: Path) -> None:
    from tokenizers.processors import RobertaProcessing

    tokenizer = read_tokenizer(write_tokenizer(tmp_path / "t.json"))
    tokenizer.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    tensors = lambda: [("roberta.embeddings.position_embeddings.weight", [514, 768])]  # noqa: E731
    assert token_limit(tokenizer, tensors=tensors) == TokenLimit(512, "position_embeddings")


@needs_minilm
def test_the_installed_minilm_reveals_512_positions() -> None:
    import onnx

    assert MINILM is not None
    model = onnx.load(str(MINILM[0]), load_external_data=False)
    tensors = [(t.name, list(t.dims)) for t in model.graph.initializer]
    # Quantised: position_embeddings.weight_q [512, 384] and _scale [512, 1], position_ids.
    assert any("position_embeddings.weight_q" in name for name, _ in tensors)
    assert position_table_size(tensors) == 512


def test_position_table_and_fixed_input_readers() -> None:
    assert position_table_size([("embeddings.position_ids", [1, 256])]) == 256
    assert position_table_size([("x.position_embeddings.bias", [512])]) is None  # 1-D
    assert (
        position_table_size([("a.position_embeddings.w", [512, 8]), ("b.position_ids", [1, 128])])
        == 128
    )
    assert position_table_size([]) is None
    fixed = [
        {"name": "attention_mask", "shape": ["b", 32]},
        {"name": "input_ids", "shape": ["b", 64]},
    ]
    assert fixed_input_length(fixed) == 64
    assert fixed_input_length([{"name": "input_ids", "shape": ["batch", "sequence"]}]) is None
    assert fixed_input_length(None) is None


# -- counting, cutting, refusing -----------------------------------------------------------


@needs_minilm
def test_counts_are_the_uncut_tokens_with_special_tokens() -> None:
    uncut = _minilm_tokenizer()
    uncut.no_truncation()
    uncut.no_padding()
    texts = ["hello world", LONG, "", "Ünïcode 🎸"]
    tokens = TextTokenizer(_minilm_tokenizer(), TokenLimit(128, "tokenizer")).tokenize(texts)
    assert tokens.counts == [len(uncut.encode(t).ids) for t in texts]
    assert tokens.counts[0] == 4 and tokens.counts[2] == 2  # [CLS] hello world [SEP]
    assert tokens.cut == [1] and tokens.counts[1] > 128
    # Under the limit: the ids as they are. Over it: cut to the limit, [SEP] kept last.
    assert tokens.ids[0] == uncut.encode("hello world").ids
    assert len(tokens.ids[1]) == 128 and tokens.ids[1][0] == CLS and tokens.ids[1][-1] == SEP
    assert tokens.ids[1][:127] == uncut.encode(LONG).ids[:127]


@needs_minilm
def test_truncate_false_refuses_naming_the_text_and_the_limit() -> None:
    tokenizer = TextTokenizer(_minilm_tokenizer(), TokenLimit(128, "tokenizer"))
    with pytest.raises(TooManyTokensError) as err:
        tokenizer.tokenize(["short", "also short", LONG], truncate=False, field="input")
    assert err.value.field == "input[2]" and err.value.limit == 128
    assert err.value.code == "context_length_exceeded" and err.value.tokens > 128
    assert f"input[2]: {err.value.tokens} tokens" in err.value.message
    assert "at most 128" in err.value.message
    # Exactly at the limit is not over it.
    fits = tokenizer.tokenize(["word " * 126], truncate=False)
    assert fits.counts == [128] and fits.cut == []


def test_a_limit_without_room_beyond_the_special_tokens_is_refused(tmp_path: Path) -> None:
    from tokenizers.processors import TemplateProcessing

    tokenizer = read_tokenizer(write_tokenizer(tmp_path / "t.json"))
    tokenizer.post_processor = TemplateProcessing(
        single="[UNK] $A [PAD]", special_tokens=[("[UNK]", 1), ("[PAD]", 0)]
    )
    with pytest.raises(ValueError, match="must be > 2"):
        TextTokenizer(tokenizer, TokenLimit(2, "registration"))


# -- a model with a fixed sequence length ---------------------------------------------------

FIXED = 6


def _fixed_length_model(path: Path) -> Path:
    """input_ids [b, 6] -> token states [b, 6, HIDDEN] (rows of the word table)."""
    from onnx import TensorProto, helper, numpy_helper

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", FIXED])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", FIXED])
    out = helper.make_tensor_value_info("token_embeddings", TensorProto.FLOAT, ["b", FIXED, HIDDEN])
    graph = helper.make_graph(
        [helper.make_node("Gather", ["E", "input_ids"], ["token_embeddings"], axis=0)],
        "fixed",
        [ids, mask],
        [out],
        initializer=[numpy_helper.from_array(table(), "E")],
    )
    return save_graph(graph, path)


def test_a_fixed_sequence_length_is_the_limit_and_every_batch_is_padded_to_it(
    tmp_path: Path,
) -> None:
    model = _fixed_length_model(tmp_path / "fixed.onnx")
    tokenizer = write_tokenizer(tmp_path / "tokenizer.json")
    embedder = TextEmbedder(model, tokenizer)
    assert embedder.limit == TokenLimit(FIXED, "model_input")
    texts = ["cat", "the cat sleeps on the mat", "the cat sleeps on the mat a cat rates"]
    tokens = embedder.tokenize(texts)
    assert tokens.counts == [1, 6, 9] and tokens.cut == [2]
    vectors = embedder.run(tokens)
    e = table()

    def mean(words: list[str]) -> np.ndarray:
        row = e[[WORDS.index(w) for w in words]].mean(axis=0)
        return row / np.linalg.norm(row)

    # Padding to 6 stays out of the mean (the mask); the long text is its first 6 words.
    np.testing.assert_allclose(vectors[0], mean(["cat"]), atol=1e-6)
    np.testing.assert_allclose(vectors[2], mean(texts[1].split()), atol=1e-6)
    with pytest.raises(EmbeddingModelError, match="takes 6 tokens per text"):
        TextEmbedder(model, tokenizer, max_length=10)
