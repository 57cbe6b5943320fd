"""Sentence embeddings from a tokenizer + ONNX encoder: text in, unit float32 vector out.

The model is a transformer encoder exported to ONNX (e.g. all-MiniLM-L6-v2). Its embedding
output is chosen by type and shape (``embedding_outputs.py``): a pooled ``[batch, hidden]``
sentence embedding when the export has one, else the token states ``[batch, sequence,
hidden]``, whose mean under the attention mask is the sentence vector, as
sentence-transformers computes it. Either way the vector is L2-normalised, so cosine
similarity is a dot product and the vectors can be stored and searched.

Each model has a token limit (``TokenLimit``: special tokens included), found in this
order: the registration's ``max_tokens``, the tokenizer file's own truncation length, the
model's fixed sequence dimension, the size of its position-embedding table, else 512. A
fixed sequence dimension or a position table smaller than the chosen number lowers it:
a longer input would fail in the model. Texts are counted uncut (``Tokens.counts``), so a
caller can refuse a text over the limit or say that it was cut.

onnxruntime and tokenizers are imported when an embedder is built, not at module import,
so the function app's cold start and "0 functions found" risk stay small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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
#: The limit when nothing about the model says one: BERT's 512 positions, the width of
#: most encoder exports.
DEFAULT_MAX_TOKENS = 512
#: RoBERTa's position table starts after its padding index (1): 514 rows hold 512 tokens.
_ROBERTA_POSITION_OFFSET = 2


class EmbeddingInputError(InvalidInputError):
    """The texts passed to ``embed`` cannot be embedded; ``field`` names the bad item."""

    code = "invalid_text"
    field: str

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field, reason=reason)


class TooManyTokensError(EmbeddingInputError):
    """A text is longer than the model's limit and the caller asked not to cut it."""

    code = "context_length_exceeded"

    def __init__(self, field: str, tokens: int, limit: int) -> None:
        super().__init__(
            field,
            f"{tokens} tokens (special tokens included); this model takes at most {limit}",
        )
        self.tokens = tokens
        self.limit = limit


@dataclass(frozen=True)
class TokenLimit:
    """Most tokens, special tokens included, one text of a model may have, and where the
    number comes from: ``registration`` (its ``max_tokens`` option), ``tokenizer`` (the
    file's own truncation), ``model_input`` (a fixed sequence dimension),
    ``position_embeddings`` (the size of the position table), ``given`` (the caller of
    ``TextEmbedder``) or ``default``."""

    tokens: int
    source: str


def token_limit(
    tokenizer: Any,
    *,
    registered: int | str | None = None,
    input_length: int | None = None,
    tensors: Callable[[], Iterable[tuple[str, Sequence[int | str]]]] | None = None,
) -> TokenLimit:
    """The model's limit: the first of ``registered``, the tokenizer's truncation length,
    ``input_length`` (a fixed sequence dimension) and the position table among
    ``tensors()`` ((name, shape) of the initializers, read only when needed), else
    ``DEFAULT_MAX_TOKENS``. A fixed input or a position table smaller than the number
    chosen lowers it, since a longer input would fail in the model."""
    chosen: TokenLimit | None = None
    if registered:
        chosen = TokenLimit(int(registered), "registration")
    elif (truncation := tokenizer.truncation) and truncation.get("max_length"):
        chosen = TokenLimit(int(truncation["max_length"]), "tokenizer")
    if input_length and (chosen is None or input_length < chosen.tokens):
        chosen = TokenLimit(input_length, "model_input")
    if tensors is not None and (chosen is None or chosen.source != "model_input"):
        table = position_table_size(tensors())
        if table and type(tokenizer.post_processor).__name__ == "RobertaProcessing":
            table -= _ROBERTA_POSITION_OFFSET
        if table and table > 0 and (chosen is None or table < chosen.tokens):
            chosen = TokenLimit(table, "position_embeddings")
    return chosen or TokenLimit(DEFAULT_MAX_TOKENS, "default")


def position_table_size(tensors: Iterable[tuple[str, Sequence[int | str]]]) -> int | None:
    """Rows of the position-embedding table among initializers (name, shape): a 2-D
    tensor named ``*position_embeddings*`` (BERT-family exports, also when quantised into
    ``..._q`` and ``..._scale`` parts) or BERT's ``position_ids`` buffer ``[1, n]``; the
    smallest if they differ. None when no initializer reveals it."""
    sizes = []
    for name, shape in tensors:
        dims = list(shape)
        if len(dims) != 2 or not all(isinstance(d, int) and d > 0 for d in dims):
            continue
        if "position_embeddings" in name:
            sizes.append(int(dims[0]))
        elif name.endswith("position_ids") and dims[0] == 1:
            sizes.append(int(dims[1]))
    return min(sizes) if sizes else None


def fixed_input_length(inputs: Iterable[Mapping[str, Any]] | None) -> int | None:
    """The fixed sequence dimension of ``input_ids`` in the stored model metadata
    (``[{"name", "shape"}]``), or None when it is symbolic or unknown."""
    for spec in inputs or ():
        shape = spec.get("shape") or []
        if spec.get("name") == "input_ids" and len(shape) == 2:
            dim = shape[1]
            return dim if isinstance(dim, int) and dim > 0 else None
    return None


@dataclass(frozen=True)
class Tokens:
    """Texts as token ids, each cut to ``limit``; ``counts`` are the tokens each text has
    uncut (special tokens included, padding not), so ``counts[i] > limit`` means cut."""

    ids: list[list[int]]
    counts: list[int]
    limit: int

    @property
    def cut(self) -> list[int]:
        """Indices of the texts that were cut to the limit."""
        return [i for i, n in enumerate(self.counts) if n > self.limit]

    @staticmethod
    def join(parts: Sequence[Tokens]) -> Tokens:
        """Several callers' tokens of one model, in order, as one."""
        if len(parts) == 1:
            return parts[0]
        return Tokens(
            [row for p in parts for row in p.ids],
            [n for p in parts for n in p.counts],
            parts[0].limit,
        )


class TextTokenizer:
    """A model's tokenizer with its limit: counts each text whole, and cuts only those
    over the limit (a second copy of the tokenizer truncates, so special tokens stay).

    Configured once here and only read afterwards (``encode_batch`` takes the tokenizer
    by shared reference), so it is safe from many threads without a lock.
    """

    def __init__(self, tokenizer: Any, limit: TokenLimit) -> None:
        from tokenizers import Tokenizer

        special = tokenizer.num_special_tokens_to_add(is_pair=False)
        if limit.tokens <= special:
            raise ValueError(
                f"max_length must be > {special} (the special tokens), got {limit.tokens}"
            )
        # Files often carry a fixed padding length (e.g. 128); keep their pad token only:
        # batches are padded here, to their longest text.
        padding = tokenizer.padding or {}
        pad_token = padding.get("pad_token", "[PAD]")
        self.pad_id: int = padding.get("pad_id", tokenizer.token_to_id(pad_token) or 0)
        self.limit = limit
        cutting = Tokenizer.from_str(tokenizer.to_str())
        cutting.no_padding()
        cutting.enable_truncation(limit.tokens)
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._counting = tokenizer
        self._cutting = cutting

    def tokenize(self, texts: list[str], *, truncate: bool = True, field: str = "texts") -> Tokens:
        """Token ids of ``texts``; a text over the limit is cut, or with ``truncate=False``
        refused (TooManyTokensError naming ``field[i]``) before any model work."""
        _validate(texts, field)
        try:
            encodings = self._counting.encode_batch(texts)
        except TypeError:
            _raise_unencodable(texts, range(len(texts)), field)
            raise
        limit = self.limit.tokens
        counts = [len(e) for e in encodings]
        over = [i for i, n in enumerate(counts) if n > limit]
        if over and not truncate:
            raise TooManyTokensError(f"{field}[{over[0]}]", counts[over[0]], limit)
        # ids are read only under the limit: a long text's whole id list is never built.
        ids: list[list[int]] = [
            e.ids if n <= limit else [] for e, n in zip(encodings, counts, strict=True)
        ]
        if over:
            cut = self._cutting.encode_batch([texts[i] for i in over])
            for i, encoding in zip(over, cut, strict=True):
                ids[i] = encoding.ids
        return Tokens(ids, counts, limit)


class EmbeddingModelError(ModelValidationError):
    """The ONNX file or tokenizer is not a usable sentence-embedding model."""


class TextEmbedder:
    """Embeds texts with one ONNX session; safe to call ``embed`` from many threads.

    The session is thread-safe and the ``TextTokenizer`` only read, so no lock is
    needed. Built from files it owns its session; in the app it is built per call with
    ``from_session`` over a session of the process's one ``SessionCache``.
    ``tokenize`` then ``run`` is ``embed`` in two steps: a caller can check the counts
    before any model work, and runs of several callers' tokens can share one batch.
    """

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        *,
        max_length: int | None = None,
        batch_size: int = 32,
        intra_op_threads: int | None = None,
        output: str | None = None,
    ) -> None:
        """``max_length`` None: the tokenizer file's own truncation length, else the
        model's fixed sequence dimension, else ``DEFAULT_MAX_TOKENS`` (the app also reads
        the registration and the position table: ``TextModels``)."""
        _check_batch_size(batch_size)
        if intra_op_threads is not None and intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
        session = _load_session(Path(model_path), intra_op_threads)
        tokenizer = load_tokenizer(Path(tokenizer_path), max_length, _fixed_length(session))
        self._bind(session, tokenizer, Path(model_path), batch_size, output)

    @classmethod
    def from_session(
        cls,
        session: Any,
        tokenizer: TextTokenizer,
        *,
        model_path: Path,
        batch_size: int = 32,
        model_name: str | None = None,
        output: str | None = None,
    ) -> TextEmbedder:
        """An embedder over a session it does not own (cached elsewhere, counted in that
        cache's budget) and a tokenizer with the model's limit.

        Cheap (no file is read), so callers build one per call and let it go: holding it
        would keep the session alive after its cache evicted it.
        """
        _check_batch_size(batch_size)
        embedder = cls.__new__(cls)
        embedder._bind(session, tokenizer, Path(model_path), batch_size, output)
        if model_name:
            embedder.model_name = model_name
        return embedder

    def _bind(
        self,
        session: Any,
        tokenizer: TextTokenizer,
        model_path: Path,
        batch_size: int,
        output: str | None = None,
    ) -> None:
        """Check the session is a sentence encoder and keep what ``embed`` needs;
        ``output`` names the embedding output when the model's own shapes cannot."""
        from shared.inference.embedding_outputs import EmbeddingOutputError, choose_output

        self.model_path = model_path
        self.model_name = model_path.stem  # the span's target; from_session names the model
        self.limit = tokenizer.limit
        self.max_length = tokenizer.limit.tokens
        self.batch_size = batch_size
        self._tokenizer = tokenizer
        self._session = session
        self._feeds = _input_types(session)
        self._fixed = _fixed_length(session)
        if self._fixed and self.max_length > self._fixed:
            raise EmbeddingModelError(
                f"{self.model_name}: the model takes {self._fixed} tokens per text, fewer "
                f"than the limit of {self.max_length} ({self.limit.source})"
            )
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
        """Unit-length float32 vectors, one row per text, in the order given; a text
        over the limit is cut to it."""
        return self.run(self.tokenize(texts))

    def tokenize(self, texts: list[str], *, truncate: bool = True, field: str = "texts") -> Tokens:
        """``texts`` as token ids with their uncut counts (``TextTokenizer.tokenize``)."""
        return self._tokenizer.tokenize(texts, truncate=truncate, field=field)

    def run(self, tokens: Tokens) -> np.ndarray:
        """Unit-length float32 vectors of tokenized texts, one row each, in their order."""
        n = len(tokens.ids)
        # Similar lengths share a batch, so little compute goes to padding.
        lengths = np.fromiter(map(len, tokens.ids), dtype=np.int64, count=n)
        order = np.argsort(lengths, kind="stable")
        result: np.ndarray | None = None
        for start in range(0, n, self.batch_size):
            rows = order[start : start + self.batch_size]
            pooled = self._embed_batch([tokens.ids[i] for i in rows])
            if result is None:
                result = np.empty((n, pooled.shape[1]), dtype=np.float32)
                self._dimension = pooled.shape[1]
            result[rows] = pooled
        assert result is not None  # tokenize refuses an empty list
        return result

    def _embed_batch(self, batch: list[list[int]]) -> np.ndarray:
        """Pad, run and pool one batch of token ids: to its longest row, or to the
        model's fixed sequence length when it has one."""
        width = self._fixed or max(map(len, batch))
        ids = np.full((len(batch), width), self._tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, row in enumerate(batch):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        columns = {
            "input_ids": ids,
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


def _validate(texts: Sequence[str], field: str = "texts") -> None:
    """Reject what cannot be embedded, naming the item, before any model work."""
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise EmbeddingInputError(field, f"expected a list of strings, got {type(texts).__name__}")
    if not texts:
        raise EmbeddingInputError(field, "must not be empty")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise EmbeddingInputError(
                f"{field}[{i}]", f"expected a string, got {type(text).__name__}"
            )


def _raise_unencodable(batch: Sequence[str], rows: Iterable[int], field: str = "texts") -> None:
    """The tokenizer's TypeError does not say which text; find it (lone surrogates)."""
    for text, row in zip(batch, rows, strict=False):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EmbeddingInputError(
                f"{field}[{int(row)}]", f"not valid Unicode text ({exc.reason} at {exc.start})"
            ) from None


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def read_tokenizer(path: Path) -> Any:
    """The ``tokenizers.Tokenizer`` of a tokenizer.json file, as the file configures it."""
    from tokenizers import Tokenizer

    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises a bare Exception on bad JSON
        raise EmbeddingModelError(f"{path.name}: not a tokenizers JSON file ({exc})") from exc


def load_tokenizer(
    path: Path, max_length: int | None = None, input_length: int | None = None
) -> TextTokenizer:
    """The tokenizer of ``path`` with its limit: ``max_length`` when given, else what
    the file and a fixed ``input_length`` of the model say (``token_limit``)."""
    tokenizer = read_tokenizer(path)
    if max_length is not None:
        limit = TokenLimit(max_length, "given")
    else:
        limit = token_limit(tokenizer, input_length=input_length)
    return TextTokenizer(tokenizer, limit)


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


def _fixed_length(session: Any) -> int | None:
    """The fixed sequence dimension of the model's ``input_ids``, or None if symbolic."""
    for arg in session.get_inputs():
        shape = list(arg.shape or [])
        if arg.name == "input_ids" and len(shape) == 2:
            dim = shape[1]
            return dim if isinstance(dim, int) and dim > 0 else None
    return None
