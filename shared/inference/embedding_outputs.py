"""Which output of a text encoder carries the embedding.

Exports in the wild differ: sentence-transformers exports put the token embeddings
second (after int64 echoes of the inputs) and a pooled `[batch, hidden]` sentence
embedding last; plain transformer exports give `last_hidden_state` first. The choice is
by type and shape: a float `[batch, hidden]` output (already pooled) when there is one,
else a float `[batch, sequence, hidden]` one (mean-pooled under the mask); conventional
names break ties; a registration may name the output outright when a model is ambiguous.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")
SENTENCE_NAMES = ("sentence_embedding", "sentence_embeddings", "embeddings", "pooled_output")
TOKEN_NAMES = ("token_embeddings", "last_hidden_state", "hidden_states")


class EmbeddingOutputError(ValueError):
    """No output (or no single output) can serve as the text embedding; says why."""


@dataclass(frozen=True)
class EmbeddingOutput:
    name: str
    pooled: bool  # True: [batch, hidden], used as is; False: [batch, seq, hidden], mean-pooled
    hidden: int | None  # the vector length when the file fixes it


def _describe(node: Any) -> str:
    return f"{node.name!r} {node.type} {list(node.shape) if node.shape is not None else '?'}"


def choose_output(outputs: Sequence[Any], explicit: str | None = None) -> EmbeddingOutput:
    """The embedding output among `outputs` (onnxruntime NodeArgs: name, type, shape)."""
    by_rank: dict[int, list[Any]] = {2: [], 3: []}
    for node in outputs:
        if node.type in FLOAT_TYPES and node.shape is not None and len(node.shape) in by_rank:
            by_rank[len(node.shape)].append(node)
    if explicit is not None:
        named = [n for n in outputs if n.name == explicit]
        if not named:
            raise EmbeddingOutputError(
                f"the model has no output {explicit!r} (embedding_output); it has "
                + ", ".join(_describe(n) for n in outputs)
            )
        node = named[0]
        if node not in by_rank[2] and node not in by_rank[3]:
            raise EmbeddingOutputError(
                f"output {_describe(node)} cannot be a text embedding: it must be float "
                "[batch, hidden] or [batch, sequence, hidden]"
            )
        return _as_output(node)
    for rank, names in ((2, SENTENCE_NAMES), (3, TOKEN_NAMES)):
        candidates = by_rank[rank]
        if len(candidates) == 1:
            return _as_output(candidates[0])
        if len(candidates) > 1:
            conventional = [n for name in names for n in candidates if n.name == name]
            if conventional:
                return _as_output(conventional[0])
            raise EmbeddingOutputError(
                "the model has several outputs that could be the embedding ("
                + ", ".join(_describe(n) for n in candidates)
                + "); name one when registering it (embedding_output)"
            )
    raise EmbeddingOutputError(
        "the model has no float [batch, hidden] or [batch, sequence, hidden] output to embed "
        "text with; its outputs are " + ", ".join(_describe(n) for n in outputs)
    )


def _as_output(node: Any) -> EmbeddingOutput:
    hidden = node.shape[-1]
    return EmbeddingOutput(
        node.name, len(node.shape) == 2, hidden if isinstance(hidden, int) else None
    )
