"""In-memory float32 matrices per (model, embedding type), loaded from SQL.

Before each search the cache reads the candidate sets' versions (one indexed query);
a set whose version moved is reloaded. Writes bump the version in the same
transaction, so a write is visible to the next search in this process and, through
the same check, in every other process sharing the database.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from shared.db.repos.embeddings import EmbeddingRepository
from shared.vectors import search as core


@dataclass
class LoadedSet:
    model_id: str
    embedding_type: str
    version: int
    ids: list[str]
    base: core.SearchMatrix  # the stored values, laid out for the dot-product scan
    _prepared: dict[str, core.SearchMatrix] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def rows(self) -> int:
        return self.base.rows

    def prepared(self, metric: str) -> core.SearchMatrix:
        """The matrix prepared for `metric`, built once per loaded version.

        dot and euclidean share the stored columns (euclidean adds squared norms);
        cosine keeps one normalised copy.
        """
        if metric == "dot":
            return self.base
        got = self._prepared.get(metric)
        if got is None:
            with self._lock:
                got = self._prepared.get(metric)
                if got is None:
                    got = self._prepare(metric)
                    self._prepared[metric] = got
        return got

    def _prepare(self, metric: str) -> core.SearchMatrix:
        cols = self.base.columns
        if metric == "euclidean":
            sq_norms = np.einsum("ij,ij->j", cols, cols, dtype=np.float32)
            return core.SearchMatrix("euclidean", cols, sq_norms)
        return core.prepare(self.base.vectors, metric)  # type: ignore[arg-type]


class IndexCache:
    def __init__(self, repo: EmbeddingRepository) -> None:
        self.repo = repo
        self._sets: dict[tuple[str, str], LoadedSet] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self.loads = 0  # how many times a set was (re)loaded from SQL

    def candidates(
        self, model_id: str | None, embedding_type: str | None, dimension: int
    ) -> tuple[list[LoadedSet], list[int]]:
        """Fresh, non-empty sets matching the filters with this dimension, and the other
        dimensions seen (so a mismatch can be explained)."""
        fresh: list[LoadedSet] = []
        other_dims: list[int] = []
        for mid, etype, dim, version in self.repo.set_versions(model_id, embedding_type):
            if dim != dimension:
                other_dims.append(dim)
                continue
            loaded = self._get(mid, etype, version)
            if loaded.rows:
                fresh.append(loaded)
        return fresh, other_dims

    def _get(self, model_id: str, embedding_type: str, version: int) -> LoadedSet:
        key = (model_id, embedding_type)
        current = self._sets.get(key)
        if current is not None and current.version == version:
            return current
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one loader per set; the others wait and reuse its result
            current = self._sets.get(key)
            if current is not None and current.version >= version:
                return current
            loaded = self._load(model_id, embedding_type)
            self._sets[key] = loaded
            return loaded

    def _load(self, model_id: str, embedding_type: str) -> LoadedSet:
        version, ids, blob, dim = self.repo.load_set(model_id, embedding_type)
        self.loads += 1
        if ids:
            rows = np.frombuffer(blob, dtype="<f4").reshape(len(ids), dim)
        else:
            rows = np.zeros((0, max(dim, 1)), dtype=np.float32)
        # The column-major copy is the only one kept; the bytes read from SQL go.
        return LoadedSet(model_id, embedding_type, version, ids, core.prepare(rows, "dot"))

    def drop(self) -> None:
        with self._lock:
            self._sets.clear()
