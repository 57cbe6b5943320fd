"""Small BERT-like text encoders as third-party exports shape them, built with the onnx
helper API: a word-level tokenizer, an embedding table, and outputs in several orders
and shapes (int64 echoes of the inputs, token embeddings, a pooled sentence embedding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.models import save_graph

WORDS = ["[PAD]", "[UNK]", "a", "cat", "sleeps", "on", "the", "mat", "rates", "rise", "bank"]
HIDDEN = 8


def write_tokenizer(path: Path) -> Path:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tokenizer = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(path))
    return path


def table() -> np.ndarray:
    return np.random.default_rng(11).standard_normal((len(WORDS), HIDDEN)).astype(np.float32)


def write_export(path: Path, outputs: list[str]) -> Path:
    """A model whose outputs are, in this order, any of: `ids` (int64 echo of input_ids),
    `mask` (int64 echo), `token_embeddings` / `last_hidden_state` / `tokens_b` (float
    [b, s, h]), `sentence_embedding` / `pooled_b` (float [b, h], mean over all tokens)."""
    from onnx import TensorProto, helper, numpy_helper

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])
    nodes = [helper.make_node("Gather", ["E", "input_ids"], ["tok"], axis=0)]
    values = []
    for name in outputs:
        if name in ("ids", "mask"):
            nodes.append(
                helper.make_node(
                    "Identity", ["input_ids" if name == "ids" else "attention_mask"], [name]
                )
            )
            values.append(helper.make_tensor_value_info(name, TensorProto.INT64, ["b", "s"]))
        elif name in ("token_embeddings", "last_hidden_state", "tokens_b"):
            scale = 2.0 if name == "tokens_b" else 1.0
            nodes.append(
                helper.make_node(
                    "Constant",
                    [],
                    [f"k_{name}"],
                    value=numpy_helper.from_array(np.float32(scale), f"k_{name}"),
                )
            )
            nodes.append(helper.make_node("Mul", ["tok", f"k_{name}"], [name]))
            values.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, ["b", "s", HIDDEN])
            )
        else:  # pooled [b, h]
            nodes.append(helper.make_node("ReduceMean", ["tok"], [name], axes=[1], keepdims=0))
            values.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["b", HIDDEN]))
    graph = helper.make_graph(
        nodes, "export", [ids, mask], values, initializer=[numpy_helper.from_array(table(), "E")]
    )
    return save_graph(graph, path)


def expected(texts: list[str]) -> np.ndarray:
    """What the app must answer for texts of equal word count (no padding, so the pooled
    export's plain mean and the mask-weighted mean of the token states agree): the mean
    of the words' table rows, L2-normalised."""
    e = table()
    rows = []
    for text in texts:
        mean = e[[WORDS.index(w) for w in text.split()]].mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.asarray(rows, dtype=np.float32)
