"""Exact top-k search: query vector(s), top_k, metric, optional model id and embedding
type -> entity ids with distance and similarity.

Each (model, type) set is scanned from its in-memory matrix; hits from several sets
(when no filter narrows to one) are merged by distance, smaller first.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from shared import telemetry
from shared.batching import Batcher, BatchLimits, limits_from_settings
from shared.errors import HartonomousError, NotSupportedError
from shared.search import text_queries
from shared.search.cache import IndexCache
from shared.search.shapes import SearchHit
from shared.search.snapshots import SnapshotStore
from shared.settings import get_settings
from shared.vectors import codec
from shared.vectors.errors import DimensionMismatchError
from shared.vectors.pool import BufferPool, default_pool

if TYPE_CHECKING:
    from shared.search.exact import SearchResult
    from shared.search.loaded import LoadedSet
    from shared.search.metadata_filter import MetadataFilter

    #: Per set: the set and the scan's result for one query.
    _Found = list[tuple[LoadedSet, SearchResult]]


@dataclass(frozen=True)
class _One:
    """One caller's query in a batch, with the sets it resolved in SQL before it joined
    (``resolved``: when, on this process's clock)."""

    query: np.ndarray
    top_k: int
    sets: list[LoadedSet]
    resolved: float
    where: MetadataFilter | None = None


class SearchService:
    def __init__(
        self,
        cache: IndexCache,
        *,
        max_dim: int,
        max_queries: int,
        pool: BufferPool | None = None,
        batching: BatchLimits | None = None,
    ) -> None:
        """`batching`: run concurrent single-query searches of one set and metric as one
        batch (None or a max size of 1: each runs alone)."""
        self.cache = cache
        self.pool = pool or default_pool()
        self.max_dim = max_dim
        self.max_queries = max_queries
        self.batcher: Batcher[_One, list[SearchHit]] | None = None
        if batching is not None and batching.enabled:
            size = min(batching.max_size, max_queries)
            self.batcher = BatchLimits(size, batching.max_delay_ms, batching.max_queue).batcher(
                "search", self._run_batch
            )

    def decode_queries(self, vector: Any, vectors: Any) -> tuple[np.ndarray, bool]:
        """The queries as an (n, d) matrix rented from the pool: `release` it when done."""
        if vector is not None:
            q = codec.decode_vector(vector, "vector", max_dim=self.max_dim, pool=self.pool)
            return q.reshape(1, -1), True
        m = codec.decode_matrix(
            vectors, "vectors", max_dim=self.max_dim, max_rows=self.max_queries, pool=self.pool
        )
        return m, False

    def embed_query(self, model: str, text: str) -> np.ndarray:
        """``text`` embedded by the text model ``model`` as a (1, d) query rented from the
        pool (``release`` it when done); a text over the model's token limit is refused
        (400 naming ``text``), an unknown model is a 404 naming ``model``."""
        embed = text_queries.embedder()
        if embed is None:
            raise NotSupportedError("text: no text embedder in this process", field="text")
        try:
            vector = np.asarray(embed(model, text), dtype=np.float32).reshape(-1)
        except HartonomousError as exc:
            if exc.field == "text[0]":  # the embedder's list of one: the request's field
                exc.field, exc.message = "text", f"text: {exc.reason}"
            raise
        query = self.pool.rent_array((1, vector.shape[0]))
        query[0] = vector
        return query

    def release(self, queries: np.ndarray) -> None:
        self.pool.give_back(queries)

    def search(
        self,
        queries: np.ndarray,
        *,
        top_k: int,
        metric: str,
        model_id: str | None = None,
        embedding_type: str | None = None,
        field: str = "vector",
        where: MetadataFilter | None = None,
        include_metadata: bool = False,
    ) -> list[list[SearchHit]]:
        """Top-k hits per query row, best first; with ``where``, the top
        ``min(top_k, matches)`` of the rows whose metadata it matches, in each set."""
        sets = self._sets(model_id, embedding_type, int(queries.shape[1]), field)
        found = self._scan(sets, queries, top_k, metric, where)
        return self._hits(found, top_k, include_metadata)

    def search_one(
        self,
        query: np.ndarray,
        *,
        top_k: int,
        metric: str,
        model_id: str | None = None,
        embedding_type: str | None = None,
        field: str = "vector",
        where: MetadataFilter | None = None,
        include_metadata: bool = False,
    ) -> list[SearchHit]:
        """Top-k hits of one query, best first: with concurrent single queries of the same
        set and metric, as one batch (the same rows and scores as alone: each set's
        result for the batch's largest k starts with its result for this query's own k,
        which is all this caller keeps).

        Filtered queries join a batch only with queries of an equal filter (its
        canonical text is part of the batch key): one mask then serves the whole batch,
        where mixing filters would need a mask per query and a scan of their union."""
        if self.batcher is None:
            return self.search(
                query.reshape(1, -1),
                top_k=top_k,
                metric=metric,
                model_id=model_id,
                embedding_type=embedding_type,
                field=field,
                where=where,
                include_metadata=include_metadata,
            )[0]
        dim = int(query.shape[-1])
        key = (
            model_id,
            embedding_type,
            metric,
            dim,
            field,
            None if where is None else where.canonical(),
        )
        # The SQL lookup and the hits are this caller's own work, done on its own thread:
        # a batch's runner only scans, and the next batch waits for no caller's lookup.
        resolved = time.perf_counter()  # when the lookup starts (see _run_batch)
        sets = self._sets(model_id, embedding_type, dim, field)
        one = _One(np.array(query.reshape(-1)), top_k, sets, resolved, where)
        found = self.batcher.submit(key, one)
        return self._hits([found], top_k, include_metadata)[0]

    def _run_batch(self, key: Hashable, items: Sequence[_One]) -> list[_Found]:
        """The scan of a batch, over the sets its latest caller resolved: a lookup that
        started later than another sees every write the earlier one would have, so
        every caller gets at least what its own lookup found."""
        _model_id, _embedding_type, metric, *_ = key  # type: ignore[misc]
        latest = max(items, key=lambda one: one.resolved)
        queries = np.stack([one.query for one in items])
        top_k = max(one.top_k for one in items)
        return self._scan(latest.sets, queries, top_k, metric, latest.where)

    def _sets(
        self, model_id: str | None, embedding_type: str | None, dim: int, field: str
    ) -> list[LoadedSet]:
        """The fresh sets a search of dimension ``dim`` scans (one SQL lookup); a 400
        naming ``field`` when stored embeddings exist only at other dimensions."""
        sets, other_dims = self.cache.candidates(model_id, embedding_type, dim)
        if not sets and other_dims:
            dims = ", ".join(str(d) for d in sorted(set(other_dims)))
            raise DimensionMismatchError(
                field, f"dimension {dim} does not match the stored embeddings (dimension {dims})"
            )
        return sets

    def _scan(
        self,
        sets: list[LoadedSet],
        queries: np.ndarray,
        top_k: int,
        metric: str,
        where: MetadataFilter | None,
    ) -> list[_Found]:
        """Per query row, each set's top-k result; the scan's duration is recorded with
        the rows it scanned."""
        started = time.perf_counter()
        per_query: list[_Found] = [[] for _ in range(queries.shape[0])]
        try:
            for loaded in sets:
                results = loaded.search(queries, top_k, metric, self.pool, where)
                for found, result in zip(per_query, results, strict=True):
                    found.append((loaded, result))
        finally:
            telemetry.record(
                "hartonomous.search.duration",
                (time.perf_counter() - started) * 1000,
                {
                    "metric": metric,
                    "rows": telemetry.rows_bucket(sum(len(one.ids) for one in sets)),
                },
            )
        return per_query

    def _hits(
        self, found: list[_Found], top_k: int, include_metadata: bool
    ) -> list[list[SearchHit]]:
        """Each query's hits, best first, cut to ``top_k`` (a batch scans for the largest
        k of its callers); several sets' hits merge by distance, ties by entity id."""
        per_query: list[list[SearchHit]] = []
        for results in found:
            hits: list[SearchHit] = []
            for loaded, result in results:
                meta = loaded.metadata_of if include_metadata else _no_metadata
                idx, dist = result.indices[:top_k], result.distances[:top_k]
                sim = result.similarities[:top_k]
                hits.extend(
                    SearchHit(
                        loaded.ids[int(i)],
                        loaded.model_id,
                        loaded.embedding_type,
                        float(d),
                        float(s),
                        meta(int(i)),
                    )
                    for i, d, s in zip(idx, dist, sim, strict=True)
                    if i >= 0
                )
            if len(results) > 1:
                hits = heapq.nsmallest(top_k, hits, key=lambda h: (h.distance, h.entity_id))
            per_query.append(hits)
        return per_query


def _no_metadata(row: int) -> None:
    return None


@cache
def snapshot_store() -> SnapshotStore:
    """Search snapshots in Blob Storage (the client is made when first needed)."""
    from shared.search.snapshots import SnapshotStore
    from shared.storage.clients import blob_service

    return SnapshotStore(blob_service, get_settings().search_snapshots_container)


@cache
def search_service() -> SearchService:
    """Exact search over in-memory matrices kept coherent with SQL."""
    from shared.db.app import database
    from shared.search.repository import SetRepository

    s = get_settings()
    cache = IndexCache(
        SetRepository(database()),
        s.search_cache_bytes,
        rows_dir=s.data_dir / "search-rows",
        compress_from=s.search_compress_from_rows,
        snapshots=snapshot_store(),
        settle_seconds=s.search_snapshot_settle_seconds,
    )
    return SearchService(
        cache, max_dim=s.max_vector_dim, max_queries=1024, batching=limits_from_settings()
    )
