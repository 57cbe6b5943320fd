"""In-memory search matrices per (model, embedding type), loaded from SQL or a snapshot.

Before each search the cache reads the candidate sets' versions (one indexed query);
a set whose version moved is reloaded. Writes bump the version in the same
transaction, so a write is visible to the next search in this process and, through
the same check, in every other process sharing the database.

A set of ``compress_from`` rows or more is held compressed (``shared.search.quantized``:
int8 codes resident, float32 rows in a memory-mapped file under ``rows_dir``); a smaller
one stays a float32 matrix, where the compressed scan's fixed costs (query
quantisation, bounds, the re-score) outweigh the bytes it saves.

With a ``SnapshotStore`` a set of ``compress_from`` rows or more (only those are
snapshotted; a smaller set never touches storage) is first looked for in Blob Storage (a
snapshot of the version SQL reports); a set loaded from SQL instead is snapshotted once
its version has stayed unchanged for ``settle_seconds``, so a burst of writes makes one
snapshot, not one per write.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared.memory import release_freed_memory
from shared.search import exact as core
from shared.search import quantized
from shared.search.loaded import LoadedSet, metadata_columns
from shared.search.repository import SetRepository
from shared.search.rowfile import write_rows

if TYPE_CHECKING:
    from shared.search.snapshots import SnapshotStore

log = logging.getLogger(__name__)

#: Sets with at least this many rows are searched compressed (measured crossover on
#: 384-dim rows: at 20k rows one query takes about the same either way; at 100k the
#: compressed scan is 2-4x faster; see the README benchmark figures).
COMPRESS_FROM = 20_000


class IndexCache:
    """Bounded by `max_bytes`: the least recently searched sets are dropped first (they
    reload from SQL when searched again). The set just loaded always stays."""

    def __init__(
        self,
        repo: SetRepository,
        max_bytes: int = 4 << 30,
        *,
        rows_dir: Path | None = None,
        compress_from: int = COMPRESS_FROM,
        snapshots: SnapshotStore | None = None,
        settle_seconds: float = 30.0,
    ) -> None:
        self.repo = repo
        self.max_bytes = max_bytes
        self.rows_dir = rows_dir
        self.compress_from = compress_from
        self.snapshots = snapshots
        self.settle_seconds = settle_seconds
        self._sets: OrderedDict[tuple[str, str], LoadedSet] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self.loads = 0  # how many times a set was (re)loaded from SQL
        self.snapshot_loads = 0  # how many times a set came from a snapshot instead
        self.snapshot_writes = 0
        self._writers: list[threading.Thread] = []

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
            loaded = self._load(model_id, embedding_type, version)
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

    def _load(self, model_id: str, embedding_type: str, version: int) -> LoadedSet:
        if self._may_have_snapshot(model_id, embedding_type):
            assert self.snapshots is not None and self.rows_dir is not None
            try:
                got = self.snapshots.load(model_id, embedding_type, version, self.rows_dir)
            except Exception:  # storage unreachable or refusing: SQL still answers
                log.exception("search snapshot of %s/%s unreadable", model_id, embedding_type)
                got = None
            if got is not None:
                self.snapshot_loads += 1
                got.fallback = lambda: self._replace_from_sql(model_id, embedding_type)
                return got
        return self._load_sql(model_id, embedding_type)

    def _may_have_snapshot(self, model_id: str, embedding_type: str) -> bool:
        """Only compressed sets are snapshotted: a smaller one loads from SQL without a
        look at storage (which, when it does not answer, would only cost time)."""
        if self.snapshots is None or self.rows_dir is None:
            return False
        return self.repo.set_size(model_id, embedding_type) >= self.compress_from

    def _replace_from_sql(self, model_id: str, embedding_type: str) -> LoadedSet:
        """A snapshot's rows proved bad: load the set from SQL and keep that instead."""
        log.warning("search snapshot of %s/%s dropped: loading from SQL", model_id, embedding_type)
        loaded = self._load_sql(model_id, embedding_type)
        with self._lock:
            self._sets[(model_id, embedding_type)] = loaded
        return loaded

    def _load_sql(self, model_id: str, embedding_type: str) -> LoadedSet:
        try:
            return self._build_from_sql(model_id, embedding_type)
        finally:  # what was read from SQL and not kept is freed by now; its heap pages go back
            release_freed_memory()

    def _build_from_sql(self, model_id: str, embedding_type: str) -> LoadedSet:
        got = self.repo.load_rows(model_id, embedding_type)
        version, ids, blob, dim = got.version, got.ids, got.vectors, got.dimension
        # Built now, with the rows: the parsed JSON is far larger than the columns, and
        # holding it until a filtered search would cost more memory than it saves time.
        metadata = metadata_columns([None if m is None else json.loads(m) for m in got.metadata])
        del got
        self.loads += 1
        if ids:
            rows = np.frombuffer(blob, dtype="<f4").reshape(len(ids), dim)
        else:
            rows = np.zeros((0, max(dim, 1)), dtype=np.float32)
        if len(ids) < self.compress_from or self.rows_dir is None:
            # The bytes read from SQL are the stored rows: prepare keeps them, no copy.
            base = core.prepare(rows, "dot")
            return LoadedSet(model_id, embedding_type, version, ids, base, metadata=metadata)
        mapped = write_rows(self.rows_dir, rows)
        del blob, rows  # only the codes stay on the heap
        loaded = LoadedSet(
            model_id,
            embedding_type,
            version,
            ids,
            None,
            quantized.quantize(mapped, keep=mapped),
            metadata=metadata,
        )
        if self.snapshots is not None:
            self._snapshot_later(loaded)
        return loaded

    def _snapshot_later(self, loaded: LoadedSet) -> None:
        """Write a snapshot once the set's version has held for ``settle_seconds`` (a
        write in between means another load, which will try again)."""

        def run() -> None:
            time.sleep(self.settle_seconds)
            try:
                if self.repo.set_version(loaded.model_id, loaded.embedding_type) != loaded.version:
                    return
                assert self.snapshots is not None
                self.snapshots.save(loaded)
                self.snapshot_writes += 1
            except Exception:  # a snapshot is an optimisation: log, never fail a search
                log.exception(
                    "search snapshot of %s/%s failed", loaded.model_id, loaded.embedding_type
                )

        thread = threading.Thread(target=run, name="search-snapshot", daemon=True)
        self._writers = [t for t in self._writers if t.is_alive()] + [thread]
        thread.start()

    def wait_for_snapshots(self, timeout: float | None = None) -> None:
        """Join the snapshot writers started so far (tests and benchmarks read what they wrote)."""
        for thread in list(self._writers):
            thread.join(timeout)
