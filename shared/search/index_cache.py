"""In-memory float32 matrices per (model, embedding type), loaded from SQL.

Before each search the cache reads the candidate sets' versions (one indexed query);
a set whose version moved is reloaded. Writes bump the version in the same
transaction, so a write is visible to the next search in this process and, through
the same check, in every other process sharing the database.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
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

    @property
    def nbytes(self) -> int:
        """Memory held: the stored columns plus what each prepared metric added."""
        extra = 0
        for prepared in list(self._prepared.values()):
            if prepared.columns is not self.base.columns:
                extra += prepared.columns.nbytes
            if prepared.sq_norms is not None:
                extra += prepared.sq_norms.nbytes
        return self.base.columns.nbytes + extra

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
        # cosine: a normalised copy for the scan; the float64 re-score reads the base rows.
        return core.prepare(self.base.vectors, metric)  # type: ignore[arg-type]


class IndexCache:
    """Bounded by `max_bytes`: the least recently searched sets are dropped first (they
    reload from SQL when searched again). The set just loaded always stays."""

    def __init__(self, repo: EmbeddingRepository, max_bytes: int = 4 << 30) -> None:
        self.repo = repo
        self.max_bytes = max_bytes
        self._sets: OrderedDict[tuple[str, str], LoadedSet] = OrderedDict()
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
            self._touch(key)
            return current
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one loader per set; the others wait and reuse its result
            current = self._sets.get(key)
            if current is not None and current.version >= version:
                return current
            loaded = self._load(model_id, embedding_type)
            with self._lock:
                self._sets[key] = loaded
                self._sets.move_to_end(key)
                self._evict(keep=key)
            return loaded

    def _touch(self, key: tuple[str, str]) -> None:
        with self._lock:
            if key in self._sets:
                self._sets.move_to_end(key)

    def _evict(self, keep: tuple[str, str]) -> None:
        total = sum(s.nbytes for s in self._sets.values())
        for key in list(self._sets):
            if total <= self.max_bytes:
                break
            if key != keep:
                total -= self._sets.pop(key).nbytes

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(s.nbytes for s in self._sets.values())

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
