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
    from shared.search.metadata_filter import MetadataFilter


@dataclass(frozen=True)
class _One:
    query: np.ndarray
    top_k: int
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
        started = time.perf_counter()
        scanned = 0
        try:
            hits, scanned = self._search(
                queries, top_k, metric, model_id, embedding_type, field, where, include_metadata
            )
        finally:
            telemetry.record(
                "hartonomous.search.duration",
                (time.perf_counter() - started) * 1000,
                {"metric": metric, "rows": telemetry.rows_bucket(scanned)},
            )
        return hits

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
        set and metric, as one batch (the same rows and scores as alone: each query's
        hits are the batch's top max(k) cut to its own k, ties broken by entity id).

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
        key = (
            model_id,
            embedding_type,
            metric,
            int(query.shape[-1]),
            field,
            None if where is None else where.canonical(),
            include_metadata,
        )
        return self.batcher.submit(key, _One(np.array(query.reshape(-1)), top_k, where))

    def _run_batch(self, key: Hashable, items: Sequence[_One]) -> list[list[SearchHit]]:
        model_id, embedding_type, metric, _dim, field, _filter, include_metadata = key  # type: ignore[misc]
        queries = np.stack([one.query for one in items])
        hits = self.search(
            queries,
            top_k=max(one.top_k for one in items),
            metric=metric,
            model_id=model_id,
            embedding_type=embedding_type,
            field=field,
            where=items[0].where,  # equal in every item: the key holds its canonical text
            include_metadata=include_metadata,
        )
        return [found[: one.top_k] for found, one in zip(hits, items, strict=True)]

    def _search(
        self,
        queries: np.ndarray,
        top_k: int,
        metric: str,
        model_id: str | None,
        embedding_type: str | None,
        field: str,
        where: MetadataFilter | None = None,
        include_metadata: bool = False,
    ) -> tuple[list[list[SearchHit]], int]:
        """The hits, and how many stored rows were scanned (for the metric's bucket)."""
        dim = int(queries.shape[1])
        sets, other_dims = self.cache.candidates(model_id, embedding_type, dim)
        if not sets and other_dims:
            dims = ", ".join(str(d) for d in sorted(set(other_dims)))
            raise DimensionMismatchError(
                field, f"dimension {dim} does not match the stored embeddings (dimension {dims})"
            )
        per_query: list[list[SearchHit]] = [[] for _ in range(queries.shape[0])]
        scanned = sum(len(loaded.ids) for loaded in sets)
        for loaded in sets:
            results = loaded.search(queries, top_k, metric, self.pool, where)
            meta = loaded.metadata_of if include_metadata else _no_metadata
            for qi, result in enumerate(results):
                idx, dist, sim = result.indices, result.distances, result.similarities
                per_query[qi].extend(
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
        if len(sets) > 1:
            per_query = [
                heapq.nsmallest(top_k, hits, key=lambda h: (h.distance, h.entity_id))
                for hits in per_query
            ]
        return per_query, scanned


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
