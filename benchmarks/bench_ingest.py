"""Embeddings ingestion through the queue, end to end, vs the direct store call.

100k vectors of d=384 as a .npy + .json pair in the ingest container; a job submitted
over HTTP runs on the queue trigger of the local host (Azurite, SQLite). The same
rows stored in-process with EmbeddingStore.upsert_array give the baseline.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

N, D = 100_000, 384


def main() -> None:
    from azure.storage.blob import BlobServiceClient

    from devhost import azurite
    from devhost.launcher import launch_app
    from shared.db.connection import open_database
    from shared.db.migrate import apply_migrations
    from shared.embeddings.repository import EmbeddingRepository
    from shared.embeddings.service import EmbeddingStore, Limits
    from shared.storage.blob_store import BlobModelStore

    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((N, D)).astype(np.float32)
    ids = [f"doc-{i}" for i in range(N)]

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        storage = azurite.start(tmp / "azurite")
        host = launch_app(
            tmp,
            storage.connection_string,
            key="bench",
            sql_connection=f"sqlite:///{tmp / 'queue.db'}",
        )
        try:
            ingest = BlobModelStore(
                BlobServiceClient.from_connection_string(storage.connection_string), "ingest"
            )
            ingest.ensure_container()
            buf = io.BytesIO()
            np.save(buf, matrix)
            buf.seek(0)
            ingest.upload("bench.npy", buf)
            ingest.upload("bench.json", io.BytesIO(json.dumps(ids).encode()))

            t0 = time.perf_counter()
            submit = {"kind": "embeddings", "payload": {"model_id": "bench", "blob": "bench.npy"}}
            key = {"x-functions-key": "bench"}
            job = host.call("POST", "/jobs", json.dumps(submit).encode(), key).json()
            while job["status"] not in ("succeeded", "failed"):
                time.sleep(0.05)
                job = host.call("GET", f"/jobs/{job['id']}", headers=key).json()
            queue_s = time.perf_counter() - t0
        finally:
            host.stop(60)
            storage.stop()

        db = open_database(f"sqlite:///{tmp / 'direct.db'}")
        apply_migrations(db)
        store = EmbeddingStore(EmbeddingRepository(db), Limits(4096, N))
        t0 = time.perf_counter()
        for start in range(0, N, 5000):
            store.upsert_array(
                "bench", "default", ids[start : start + 5000], matrix[start : start + 5000]
            )
        direct_s = time.perf_counter() - t0

    print(f"\nEmbeddings ingestion, {N:,} vectors of d={D} (.npy + .json ids in Blob Storage)")
    print(f"{'path':<46}{'seconds':>9}{'rows/s':>11}")
    print(
        f"{'direct EmbeddingStore.upsert_array (SQLite)':<46}{direct_s:>9.2f}{N / direct_s:>11,.0f}"
    )
    print(f"{'HTTP submit -> queue -> trigger -> SQLite':<46}{queue_s:>9.2f}{N / queue_s:>11,.0f}")
    print(f"job {job['status']}: {job.get('result') or job.get('error')}")
    print(f"end to end runs at {direct_s / queue_s:.2f}x the direct store rate")


if __name__ == "__main__":
    main()
