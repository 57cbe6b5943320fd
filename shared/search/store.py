"""Embedding writes and reads with wire-format decoding and limits applied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.db.repos.embeddings import EmbeddingRepository, UpsertCounts
from shared.vectors import codec
from shared.vectors.errors import DimensionMismatchError, LimitExceededError


@dataclass(frozen=True)
class Limits:
    max_dim: int
    max_rows: int


def to_bytes(vector: np.ndarray) -> bytes:
    """The SQL storage format: float32 little-endian."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


class EmbeddingStore:
    def __init__(self, repo: EmbeddingRepository, limits: Limits) -> None:
        self.repo = repo
        self.limits = limits

    def upsert(
        self, model_id: str, embedding_type: str, items: list[tuple[str, Any]]
    ) -> tuple[int, UpsertCounts]:
        """Decode and store `(entity_id, wire vector)` pairs in one transaction.

        Returns (dimension, counts)."""
        if len(items) > self.limits.max_rows:
            raise LimitExceededError(
                "items", f"{len(items)} items; the limit is {self.limits.max_rows} per request"
            )
        rows: list[tuple[str, bytes]] = []
        dim = 0
        for i, (entity_id, wire) in enumerate(items):
            vec = codec.decode_vector(wire, f"items[{i}].vector", max_dim=self.limits.max_dim)
            if i == 0:
                dim = int(vec.shape[0])
            elif vec.shape[0] != dim:
                raise DimensionMismatchError.between(
                    f"items[{i}].vector", int(vec.shape[0]), "items[0].vector", dim
                )
            rows.append((entity_id, to_bytes(vec)))
        return dim, self.repo.upsert_many(model_id, embedding_type, rows)

    def get(self, entity_id: str, model_id: str | None, embedding_type: str | None):
        return self.repo.get(entity_id, model_id=model_id, embedding_type=embedding_type)

    def delete(self, entity_id: str, model_id: str | None, embedding_type: str | None) -> int:
        return self.repo.delete(entity_id, model_id=model_id, embedding_type=embedding_type)
