"""Sentence embeddings from a tokenizer + ONNX encoder: text in, unit float32 vector out.

The model is a transformer encoder exported to ONNX (e.g. all-MiniLM-L6-v2). Its embedding
output is chosen by type and shape (``embedding_outputs.py``): a pooled ``[batch, hidden]``
sentence embedding when the export has one, else the token states ``[batch, sequence,
hidden]``, whose mean under the attention mask is the sentence vector, as
sentence-transformers computes it. Either way the vector is L2-normalised, so cosine
similarity is a dot product and the vectors can be stored and searched.

onnxruntime and tokenizers are imported when an embedder is built, not at module import,
so the function app's cold start and "0 functions found" risk stay small.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import InvalidInputError
from shared.registry.errors import ModelValidationError
from shared.telemetry import onnx_run
from shared.vectors.pool import default_pool

#: Inputs the embedder knows how to fill; a model may declare any subset containing input_ids.
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
#: Guards the division for a vector that pools to zero (sentence-transformers uses the same).
_NORM_EPS = 1e-12


class EmbeddingInputError(InvalidInputError):
    """The texts passed to ``embed`` cannot be embedded; ``field`` names the bad item."""

    code = "invalid_text"
    field: str

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field, reason=reason)


class EmbeddingModelError(ModelValidationError):
    """The ONNX file or tokenizer is not a usable sentence-embedding model."""


class TextEmbedder:
    """Embeds texts with one ONNX session; safe to call ``embed`` from many threads.

    The session is thread-safe; the tokenizer is configured once (``load_tokenizer``) and
    only read afterwards (``encode_batch`` takes it by shared reference), so no lock is
    needed. Built from files it owns its session; in the app it is built per call with
    ``from_session`` over a session of the process's one ``SessionCache``.
    """

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        *,
        max_length: int = 256,
        batch_size: int = 32,
        intra_op_threads: int | None = None,
        output: str | None = None,
    ) -> None:
        _check_batch_size(batch_size)
        if intra_op_threads is not None and intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
        tokenizer = load_tokenizer(Path(tokenizer_path), max_length)
        session = _load_session(Path(model_path), intra_op_threads)
        self._bind(session, tokenizer, Path(model_path), max_length, batch_size, output)

    @classmethod
    def from_session(
        cls,
        session: Any,
        tokenizer: Any,
        *,
        model_path: Path,
        max_length: int = 256,
        batch_size: int = 32,
        model_name: str | None = None,
        output: str | None = None,
    ) -> TextEmbedder:
        """An embedder over a session it does not own (cached elsewhere, counted in that
        cache's budget) and a tokenizer from ``load_tokenizer(path, max_length)``.

        Cheap (no file is read), so callers build one per call and let it go: holding it
        would keep the session alive after its cache evicted it.
        """
        _check_batch_size(batch_size)
        embedder = cls.__new__(cls)
        embedder._bind(session, tokenizer, Path(model_path), max_length, batch_size, output)
        if model_name:
            embedder.model_name = model_name
        return embedder

    def _bind(
        self,
        session: Any,
        tokenizer: Any,
        model_path: Path,
        max_length: int,
        batch_size: int,
        output: str | None = None,
    ) -> None:
        """Check the session is a sentence encoder and keep what ``embed`` needs;
        ``output`` names the embedding output when the model's own shapes cannot."""
        from shared.inference.embedding_outputs import EmbeddingOutputError, choose_output

        self.model_path = model_path
        self.model_name = model_path.stem  # the span's target; from_session names the model
        self.max_length = max_length
        self.batch_size = batch_size
        self._tokenizer = tokenizer
        self._session = session
        self._feeds = _input_types(session)
        try:
            chosen = choose_output(session.get_outputs(), output)
        except EmbeddingOutputError as exc:
            raise EmbeddingModelError(f"{self.model_name}: {exc}") from None
        self._output = chosen.name
        self._pooled = chosen.pooled
        self._dimension: int | None = chosen.hidden

    @property
    def dimension(self) -> int:
        """Length of each vector (the model's hidden size)."""
        if self._dimension is None:  # symbolic in the file: find it with one run
            self._dimension = int(self.embed([""]).shape[1])
        return self._dimension

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in the order given."""
        _validate(texts)
        n = len(texts)
        # Similar lengths share a batch, so little compute goes to padding.
        order = np.argsort(np.fromiter(map(len, texts), dtype=np.int64, count=n), kind="stable")
        result: np.ndarray | None = None
        for start in range(0, n, self.batch_size):
            rows = order[start : start + self.batch_size]
            pooled = self._embed_batch([texts[i] for i in rows], rows)
            if result is None:
                result = np.empty((n, pooled.shape[1]), dtype=np.float32)
                self._dimension = pooled.shape[1]
            result[rows] = pooled
        assert result is not None  # texts is non-empty
        return result

    def _embed_batch(self, batch: list[str], rows: np.ndarray) -> np.ndarray:
        """Tokenize, run and pool one batch; ``rows`` are the texts' indices for errors."""
        try:
            encodings = self._tokenizer.encode_batch(batch)
        except TypeError:
            _raise_unencodable(batch, rows)
            raise
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        columns = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(mask),  # single sentences are segment 0
        }
        feeds = {name: columns[name].astype(dt, copy=False) for name, dt in self._feeds.items()}
        with onnx_run(self.model_name):
            out = self._session.run([self._output], feeds)[0]
        if self._pooled:
            return normalize_rows(out)
        return mean_pool_normalize(out, mask)


def mean_pool_normalize(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked mean over the sequence axis, then L2 normalisation: ``[b, s, h] -> [b, h]``.

    The masked sum is one batched matmul ``mask[b, 1, s] @ hidden[b, s, h]`` into a pooled
    scratch buffer, so padding never contributes and no Python loop runs per token.
    """
    hidden = np.asarray(hidden, dtype=np.float32)
    weights = mask.astype(np.float32)
    b, _, h = hidden.shape
    pool = default_pool()
    with pool.rent((b, 1, h)) as sums:
        np.matmul(weights[:, None, :], hidden, out=sums)
        pooled = sums[:, 0, :]
        counts = np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
        pooled /= counts
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, _NORM_EPS)


def normalize_rows(pooled: np.ndarray) -> np.ndarray:
    """A pooled ``[b, h]`` sentence embedding, L2-normalised in float32."""
    pooled = np.asarray(pooled, dtype=np.float32)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled / np.maximum(norms, _NORM_EPS)


def _validate(texts: Sequence[str]) -> None:
    """Reject what cannot be embedded, naming the item, before any model work."""
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise EmbeddingInputError(
            "texts", f"expected a list of strings, got {type(texts).__name__}"
        )
    if not texts:
        raise EmbeddingInputError("texts", "must not be empty")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise EmbeddingInputError(
                f"texts[{i}]", f"expected a string, got {type(text).__name__}"
            )


def _raise_unencodable(batch: list[str], rows: np.ndarray) -> None:
    """The tokenizer's TypeError does not say which text; find it (lone surrogates)."""
    for text, row in zip(batch, rows, strict=True):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EmbeddingInputError(
                f"texts[{int(row)}]", f"not valid Unicode text ({exc.reason} at {exc.start})"
            ) from None


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def load_tokenizer(path: Path, max_length: int = 256) -> Any:
    """The tokenizer, truncating to ``max_length`` and padding to the batch's longest."""
    from tokenizers import Tokenizer

    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises a bare Exception on bad JSON
        raise EmbeddingModelError(f"{path.name}: not a tokenizers JSON file ({exc})") from exc
    special = tokenizer.num_special_tokens_to_add(is_pair=False)
    if max_length <= special:
        raise ValueError(f"max_length must be > {special} (the special tokens), got {max_length}")
    tokenizer.enable_truncation(max_length)
    # Files often carry a fixed padding length (e.g. 128); keep their pad token, drop the length.
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token", "[PAD]")
    pad_id = padding.get("pad_id", tokenizer.token_to_id(pad_token) or 0)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token, length=None)
    return tokenizer


def _load_session(path: Path, intra_op_threads: int | None) -> Any:
    """A CPU onnxruntime session on a local file."""
    import onnxruntime as ort

    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    options = ort.SessionOptions()
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _input_types(session: Any) -> dict[str, type[np.integer]]:
    """Input name -> numpy dtype for the inputs the model declares; reject unknown ones."""
    feeds: dict[str, type[np.integer]] = {}
    for arg in session.get_inputs():
        if arg.name not in KNOWN_INPUTS:
            raise EmbeddingModelError(
                f"model input {arg.name!r} is not one of {', '.join(KNOWN_INPUTS)}"
            )
        if arg.type not in _INT_TYPES:
            raise EmbeddingModelError(f"model input {arg.name!r} has type {arg.type}; need int")
        feeds[arg.name] = _INT_TYPES[arg.type]
    if "input_ids" not in feeds:
        raise EmbeddingModelError("model has no input_ids input")
    return feeds
