"""Vectors as the OpenAI embeddings API returns them: shortened to ``dimensions`` and
renormalised (Matryoshka style), as float lists or base64 of little-endian float32."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import numpy as np

from shared.errors import InvalidInputError

#: Guards the division for a prefix that is all zeros.
_NORM_EPS = 1e-12


def shorten(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """The first ``dimensions`` components of each row, scaled back to unit length; the
    rows as they are when None or the full width. Wider than the model: a 400 naming
    ``dimensions``."""
    width = int(vectors.shape[1])
    if dimensions is None or dimensions == width:
        return vectors
    if dimensions > width:
        raise InvalidInputError(
            f"dimensions: {dimensions} is more than this model's {width}", field="dimensions"
        )
    head = np.ascontiguousarray(vectors[:, :dimensions], dtype=np.float32)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    head /= np.maximum(norms, _NORM_EPS)
    return head


def encode_rows(vectors: np.ndarray, encoding_format: str) -> list[Any]:
    """One entry per row: a list of floats, or (``base64``) the base64 text of the row's
    little-endian float32 bytes, which the openai SDK decodes with ``np.frombuffer``."""
    if encoding_format == "base64":
        rows = np.ascontiguousarray(vectors, dtype="<f4")
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]
    return np.asarray(vectors, dtype=np.float32).tolist()


def embeddings_body(
    model: str, vectors: np.ndarray, tokens: int, encoding_format: str
) -> dict[str, Any]:
    """The reply of ``POST /v1/embeddings`` (``shapes.EmbeddingsResponse``), built as a
    dict: it is on every call's path."""
    rows = encode_rows(vectors, encoding_format)
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(rows)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def unix_seconds(stamp: str) -> int:
    """A stored timestamp (ISO-8601 UTC, ``Z`` or naive) as Unix seconds."""
    text = stamp.removesuffix("Z")
    return int(datetime.fromisoformat(text + "+00:00").timestamp())
