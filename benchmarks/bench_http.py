"""HTTP round trip of /api/search through the local host vs the bare in-process call.

Same data (N = 100k, d = 384, in SQLite), same query, measured in one run: the
difference is what the host, HTTP, JSON and the trigger layer add per request.
"""

from __future__ import annotations

import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

N, D, REQUESTS, TOP_K = 100_000, 384, 60, 10


def _fill(db_url: str, vectors: np.ndarray) -> None:
    from shared.db.connection import open_database
    from shared.db.migrate import apply_migrations
    from shared.embeddings.repository import EmbeddingRepository

    db = open_database(db_url)
    apply_migrations(db)
    repo = EmbeddingRepository(db)
    rows = [(f"e{i}", vectors[i].astype("<f4").tobytes()) for i in range(len(vectors))]
    repo.upsert_many("bench", "text", rows)
    db.close()


def main() -> None:
    from devhost import azurite
    from devhost.launcher import launch_app
    from shared.db.connection import open_database
    from shared.search.cache import IndexCache
    from shared.search.repository import SetRepository
    from shared.search.service import SearchService

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((N, D)).astype(np.float32)
    query = rng.standard_normal(D).astype(np.float32)
    body = json.dumps({"vector": query.tolist(), "top_k": TOP_K, "metric": "cosine"}).encode()

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        db_url = f"sqlite:///{tmp / 'bench.db'}"
        _fill(db_url, vectors)
        storage = azurite.start(tmp / "azurite")
        host = launch_app(tmp, storage.connection_string, key="bench", sql_connection=db_url)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=60)
            headers = {"Content-Type": "application/json", "x-functions-key": "bench"}

            def call() -> dict:
                conn.request("POST", "/api/search", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                assert resp.status == 200, data[:300]
                return json.loads(data)

            http_hits = call()["results"]  # warm-up: loads the set, prepares cosine
            call()
            http_ms = []
            for _ in range(REQUESTS):
                t0 = time.perf_counter()
                call()
                http_ms.append((time.perf_counter() - t0) * 1000)

            db = open_database(db_url)
            service = SearchService(IndexCache(SetRepository(db)), max_dim=4096, max_queries=64)
            q = query[None, :]
            local_hits = service.search(q, top_k=TOP_K, metric="cosine")[0]
            local_ms = []
            for _ in range(REQUESTS):
                t0 = time.perf_counter()
                service.search(q, top_k=TOP_K, metric="cosine")
                local_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            host.stop()
            storage.stop()

    same = [h["entity_id"] for h in http_hits] == [h.entity_id for h in local_hits]
    h, b = statistics.median(http_ms), statistics.median(local_ms)
    print(f"\nHTTP round trip of /api/search, N={N:,} d={D} top_k={TOP_K} ({REQUESTS} requests)")
    print(f"{'path':<34}{'median ms':>12}{'p90 ms':>10}")
    print(f"{'in-process SearchService.search':<34}{b:>12.2f}{np.percentile(local_ms, 90):>10.2f}")
    print(f"{'local host, HTTP keep-alive':<34}{h:>12.2f}{np.percentile(http_ms, 90):>10.2f}")
    print(f"overhead: {h - b:.2f} ms per request, ratio {h / b:.2f}x; same hits: {same}")


if __name__ == "__main__":
    main()
