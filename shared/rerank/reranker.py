"""One cross-encoder version ready to score (query, document) pairs: its warmed session,
its pair tokenizer and its token limit (the module docstring of ``service.py`` says how
scores are made; ``embedder.token_limit`` how the limit is)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from shared.inference.embedder import TokenLimit
from shared.inference.sessions import LoadedSession
from shared.registry.errors import ModelValidationError
from shared.registry.repository import ModelRecord
from shared.rerank.pairs import EncodedPairs, PairTokenizer
from shared.telemetry import onnx_run

#: Pairs per session run within one call (a call of 1000 documents runs 32 times).
RUN_ROWS = 32
#: The inputs a cross-encoder may declare; input_ids is required.
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_INT_TYPES = {"INT64": np.int64, "INT32": np.int32}
_FLOAT_TYPES = ("FP32", "FP16", "FP64")


class NotACrossEncoderError(ModelValidationError):
    """The model's inputs or outputs are not those of a cross-encoder (HTTP 422)."""

    code = "not_a_cross_encoder"


class Reranker:
    """One cross-encoder version: its warmed session, its pair tokenizer and its limit.
    Built per call (``CrossEncoders.reranker``); safe to use from many threads."""

    def __init__(
        self,
        loaded: LoadedSession,
        tokenizer: PairTokenizer,
        record: ModelRecord,
        limit: TokenLimit,
    ) -> None:
        """``limit``: most tokens a pair may have, special tokens included."""
        self.loaded = loaded
        self.tokenizer = tokenizer
        self.name = record.name
        self.version = record.version
        self.feeds = self._input_types(loaded)
        self.output = self._logits_output(loaded)
        spec = next(s for s in loaded.inputs if s.name == "input_ids")
        dims = spec.shape or ()
        fixed = dims[1] if len(dims) == 2 else None
        #: The sequence length the model takes, when it declares one.
        self.fixed_length = fixed if isinstance(fixed, int) and fixed > 0 else None
        self.limit = limit

    def _fail(self, why: str) -> NotACrossEncoderError:
        return NotACrossEncoderError(
            f"model {self.name!r} is not a cross-encoder: {why}; rerank needs a sequence "
            "classifier over (query, document) pairs (inputs input_ids with "
            "attention_mask and token_type_ids as it declares them, logits [batch, 1] "
            "or [batch, 2])",
            field="model",
        )

    def _input_types(self, loaded: LoadedSession) -> dict[str, type[np.integer]]:
        feeds: dict[str, type[np.integer]] = {}
        for spec in loaded.inputs:
            if spec.name not in KNOWN_INPUTS:
                raise self._fail(f"input {spec.name!r} is not one of {', '.join(KNOWN_INPUTS)}")
            if spec.datatype not in _INT_TYPES or spec.shape is None or len(spec.shape) != 2:
                raise self._fail(f"input {spec.name!r} is not an integer [batch, sequence] tensor")
            feeds[spec.name] = _INT_TYPES[spec.datatype]
        if "input_ids" not in feeds:
            raise self._fail("it has no input_ids input")
        return feeds

    def _logits_output(self, loaded: LoadedSession) -> str:
        floats = [s for s in loaded.outputs if s.is_tensor and s.datatype in _FLOAT_TYPES]
        named = [s for s in floats if s.name == "logits"]
        chosen = named or floats
        if len(chosen) != 1:
            outputs = ", ".join(repr(s.name) for s in loaded.outputs) or "none"
            raise self._fail(f"no single float output of logits among its outputs ({outputs})")
        spec = chosen[0]
        shape = spec.shape
        if shape is not None and not (
            len(shape) == 1
            or (len(shape) == 2 and not (isinstance(shape[1], int) and shape[1] not in (-1, 1, 2)))
        ):
            raise self._fail(f"output {spec.name!r} has shape {list(shape)}")
        return spec.name

    def encode(
        self, query: str, documents: Sequence[str], max_tokens_per_doc: int | None = None
    ) -> EncodedPairs:
        return self.tokenizer.encode(query, documents, self.limit.tokens, max_tokens_per_doc)

    def score(self, ids: Sequence[list[int]], type_ids: Sequence[list[int]]) -> np.ndarray:
        """Relevance of each pair, in the order given (float64, from float32 logits)."""
        n = len(ids)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
        order = np.argsort(lengths, kind="stable")
        scores = np.empty(n, dtype=np.float64)
        for start in range(0, n, RUN_ROWS):
            rows = order[start : start + RUN_ROWS]
            logits = self._run([ids[i] for i in rows], [type_ids[i] for i in rows])
            scores[rows] = relevance(logits, self._fail)
        return scores

    def _run(self, ids: list[list[int]], type_ids: list[list[int]]) -> np.ndarray:
        input_ids, segments, mask = self.tokenizer.feeds(ids, type_ids, self.fixed_length)
        columns = {"input_ids": input_ids, "token_type_ids": segments, "attention_mask": mask}
        feeds = {name: columns[name].astype(dt, copy=False) for name, dt in self.feeds.items()}
        try:
            with onnx_run(self.name, self.version):
                return self.loaded.session.run([self.output], feeds)[0]
        except self.loaded.run_errors as exc:
            raise ModelValidationError(
                f"model {self.name!r} could not score the pairs: {str(exc).strip()[:300]}",
                field="model",
            ) from None


def relevance(logits: np.ndarray, fail: Callable[[str], Exception] | None = None) -> np.ndarray:
    """Relevance in [0, 1] from a cross-encoder's logits: the sigmoid of one logit, or
    the softmax probability of class 1 of two (``sigmoid(l1 - l0)``, the same number)."""
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] not in (1, 2):
        why = f"its logits have shape {list(np.shape(logits))}"
        raise fail(why) if fail is not None else ValueError(why)
    z = x[:, 0] if x.shape[1] == 1 else x[:, 1] - x[:, 0]
    with np.errstate(over="ignore"):  # exp(+large) is inf: a score of exactly 0
        return 1.0 / (1.0 + np.exp(-z))
