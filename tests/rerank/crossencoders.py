"""Small cross-encoders as sequence-classification exports shape them, built with the onnx
helper API, and a BERT-style tokenizer for them built with the tokenizers library; plus
the reference the app must match: the tokenizers library's own pair encoding (truncating
``only_second``) run on a bare onnxruntime session.

The model: token and segment embeddings summed, a Tanh layer, a mean over the tokens the
attention mask keeps, and a linear head to one or two logits. Padding never changes a
score (the mask keeps it out), so a pair scores the same alone or beside longer ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tests.support.models import save_graph

#: Whole words of the vocabulary: a text of them has one token per word.
TEXT_WORDS = (
    "a the cat dog sleeps runs on mat bank river money interest rates rise park green"
    " fast slow house water fish bird tree sun rain cloud city road car train boat"
)
WORDS = TEXT_WORDS.split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS, "##s", "##ing"]
HIDDEN = 16


def write_tokenizer(
    path: Path, *, max_length: int | None = None, pad_length: int | None = None
) -> Path:
    """A WordPiece tokenizer with BERT's pair template (``[CLS] A [SEP] B [SEP]``, segment
    1 for B); ``max_length`` saves a truncation length in the file, ``pad_length`` a fixed
    padding length (as some exports ship them)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from tokenizers.processors import TemplateProcessing

    tokenizer = Tokenizer(WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.normalizer = BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = BertPreTokenizer()
    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    if max_length is not None:
        tokenizer.enable_truncation(max_length)
    if pad_length is not None:
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=pad_length)
    tokenizer.save(str(path))
    return path


def write_cross_encoder(
    path: Path,
    *,
    logits: int = 1,
    token_type_ids: bool = True,
    sequence: int | str = "s",
    flat: bool = False,
    positions: int | None = None,
    seed: int = 5,
) -> Path:
    """A cross-encoder with `logits` (1 or 2) outputs per pair, named ``logits``:
    ``[batch, logits]``, or ``[batch]`` when `flat`. `sequence` is the declared sequence
    dimension (an int fixes it); without `token_type_ids` the model has no such input.
    `positions` adds a position-embedding table of that many rows, named as BERT exports
    name it, added to each token's embedding: a longer pair fails in the model."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "E": rng.standard_normal((len(VOCAB), HIDDEN)),
        "S": rng.standard_normal((2, HIDDEN)),
        "W1": rng.standard_normal((HIDDEN, HIDDEN)) / np.sqrt(HIDDEN),
        "W2": rng.standard_normal((HIDDEN, logits)),
        "B2": rng.standard_normal(logits),
        "axis1": np.array([1], dtype=np.int64),
        "axis2": np.array([2], dtype=np.int64),
    }
    inits = [
        numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k)
        for k, v in weights.items()
    ]
    dims = ["b", sequence]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, dims),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dims),
    ]
    nodes = [helper.make_node("Gather", ["E", "input_ids"], ["tok"], axis=0)]
    if token_type_ids:
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, dims))
        nodes += [
            helper.make_node("Gather", ["S", "token_type_ids"], ["seg"], axis=0),
            helper.make_node("Add", ["tok", "seg"], ["emb"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["tok"], ["emb"]))
    if positions is not None:
        table = "embeddings.position_embeddings.weight"
        extra = {
            table: rng.standard_normal((positions, HIDDEN)),
            "zero": np.array(0, dtype=np.int64),
            "one": np.array(1, dtype=np.int64),
        }
        inits += [
            numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k)
            for k, v in extra.items()
        ]
        nodes += [
            helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
            helper.make_node("Gather", ["ids_shape", "one"], ["length"], axis=0),
            helper.make_node("Range", ["zero", "length", "one"], ["position_ids"]),
            helper.make_node("Gather", [table, "position_ids"], ["pos"], axis=0),
            helper.make_node("Add", ["emb", "pos"], ["emb_pos"]),
        ]
    embedded = "emb" if positions is None else "emb_pos"
    nodes += [
        helper.make_node("MatMul", [embedded, "W1"], ["h0"]),
        helper.make_node("Tanh", ["h0"], ["h"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axis2"], ["m3"]),
        helper.make_node("Mul", ["h", "m3"], ["hm"]),
        helper.make_node("ReduceSum", ["hm", "axis1"], ["sum"], keepdims=0),
        helper.make_node("ReduceSum", ["m3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Div", ["sum", "count"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "W2"], ["l0"]),
    ]
    if flat:
        nodes += [
            helper.make_node("Add", ["l0", "B2"], ["l1"]),
            helper.make_node("Squeeze", ["l1", "axis1"], ["logits"]),
        ]
        out_dims: list[int | str] = ["b"]
    else:
        nodes.append(helper.make_node("Add", ["l0", "B2"], ["logits"]))
        out_dims = ["b", logits]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_dims)
    graph = helper.make_graph(nodes, "cross_encoder", inputs, [output], initializer=inits)
    return save_graph(graph, path)


def bare_logits(
    model: Path,
    tokenizer_file: Path,
    query: str,
    documents: Sequence[str],
    limit: int,
    *,
    pad_to: int | None = None,
) -> np.ndarray:
    """The model's logits for the pairs as the tokenizers library encodes them itself
    (``only_second`` truncation to `limit`, padded to the longest or to `pad_to`), on a
    plain onnxruntime session: no app code involved."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(limit, strategy="only_second")
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=pad_to)
    encodings = tokenizer.encode_batch([(query, d) for d in documents])
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    columns = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    feeds = {i.name: columns[i.name] for i in session.get_inputs()}
    return session.run(None, feeds)[0]


def expected_scores(logits: np.ndarray) -> np.ndarray:
    """What the app answers for those logits: the sigmoid of one logit, or the softmax
    probability of class 1 of two (written out here, not taken from the app)."""
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim == 1 or x.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-x.reshape(-1)))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e[:, 1] / e.sum(axis=1)


def tokens(text: str) -> int:
    """Tokens of a text of whole vocabulary words: one per word."""
    return len(text.split())
