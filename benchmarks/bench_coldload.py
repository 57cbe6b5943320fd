"""First search on a cold process, 1M x 384: from a Blob Storage snapshot vs from SQL.

A SQLite file holds the set (as the app stores it) and Azurite serves Blob Storage,
both on this machine. Each variant runs in a fresh Python process that builds the
app's ``IndexCache`` + ``SearchService`` and times its first search (which loads the
set), then a second one (warm):

* SQL, float32 (a set under ``compress_from`` rows): rows read from SQL into the float32
  matrix;
* SQL, compressed: rows read from SQL, written to the mapped rows file, quantised;
* snapshot: header + members downloaded with parallel ranged reads (codes into memory,
  float32 rows into the mapped file), CRCs checked, version checked against SQL.

The SQLite file stays in the page cache across variants (as it would on a database
server); Azurite keeps its blobs on local disk. Goal: snapshot >= 5x faster than SQL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .timing import table

ROWS = int(os.environ.get("COLDLOAD_ROWS", "1000000"))
DIM = 384
MODEL, ETYPE = "bench-cold", "t"
RUNS = 2

_CHILD = r"""
import json, sys, time
from pathlib import Path
from typing import Any
import numpy as np
from azure.storage.blob import BlobServiceClient
from shared.db.connection import open_database
from shared.search.cache import IndexCache
from shared.search.repository import SetRepository
from shared.search.service import SearchService
from shared.search.snapshots import SnapshotStore

db_url, conn, container, rows_dir, mode = sys.argv[1:6]
started = time.perf_counter()
repo = SetRepository(open_database(db_url))
snaps = SnapshotStore(BlobServiceClient.from_connection_string(conn), container)
compress = mode != "sql-float32"
cache = IndexCache(
    repo,
    64 << 30,
    rows_dir=Path(rows_dir),
    compress_from=1 if compress else 2**31 - 1,
    snapshots=snaps if mode in ("snapshot", "write") else None,
    settle_seconds=0,
)
service = SearchService(cache, max_dim=4096, max_queries=64)
q = np.random.default_rng(5).standard_normal((1, 384)).astype(np.float32)
t0 = time.perf_counter()
hits = service.search(q, top_k=10, metric="cosine", model_id="bench-cold")
first = time.perf_counter() - t0
t1 = time.perf_counter()
service.search(q, top_k=10, metric="cosine", model_id="bench-cold")
second = time.perf_counter() - t1
if mode == "write":
    cache.wait_for_snapshots()
print(json.dumps({"first": first, "second": second, "sql_loads": cache.loads,
                  "snapshot_loads": cache.snapshot_loads, "writes": cache.snapshot_writes,
                  "hits": [h.entity_id for h in hits[0]]}))
"""


def _fill(db_url: str) -> None:
    from shared.db.connection import open_database
    from shared.db.migrate import apply_migrations
    from shared.embeddings.repository import EmbeddingRepository

    db = open_database(db_url)
    apply_migrations(db)
    repo = EmbeddingRepository(db)
    rng = np.random.default_rng(3)
    for start in range(0, ROWS, 50_000):
        block = rng.standard_normal((min(50_000, ROWS - start), DIM), dtype=np.float32)
        rows = [(f"e{start + i}", block[i].tobytes()) for i in range(len(block))]
        repo.upsert_many(MODEL, ETYPE, rows)


def _child(args: list[str]) -> dict:
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from devhost import azurite

    work = Path(tempfile.mkdtemp(prefix="bench-coldload-"))  # ~5 GB at 1M rows
    try:
        _run(work, azurite)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, azurite: Any) -> None:
    db_url = f"sqlite:///{work / 'db.sqlite'}"
    t = time.perf_counter()
    _fill(db_url)
    print(f"filled SQLite with {ROWS:,} x {DIM} in {time.perf_counter() - t:.1f} s")
    server = azurite.start(work / "azurite")
    try:
        container = "search-snapshots"
        base = [db_url, server.connection_string, container, str(work / "rows")]
        t = time.perf_counter()
        wrote = _child([*base, "write"])
        print(
            f"first process: loaded from SQL, wrote the snapshot ({time.perf_counter() - t:.1f} s)"
        )
        assert wrote["writes"] == 1, wrote
        results: dict[str, list[dict]] = {"sql-float32": [], "sql-compressed": [], "snapshot": []}
        for _ in range(RUNS):  # interleaved: a neighbour's load hits every variant alike
            for mode in results:
                results[mode].append(_child([*base, mode]))
        snap = results["snapshot"]
        assert all(r["snapshot_loads"] == 1 and r["sql_loads"] == 0 for r in snap), snap
        assert all(r["hits"] == wrote["hits"] for rs in results.values() for r in rs)
    finally:
        server.stop()
    best = {m: min(r["first"] for r in rs) for m, rs in results.items()}
    rows = []
    for mode, rs in results.items():
        firsts = sorted(r["first"] for r in rs)
        rows.append(
            [
                mode,
                f"{firsts[0]:.2f}-{firsts[-1]:.2f} s",
                f"{min(r['second'] for r in rs) * 1e3:.1f} ms",
                f"{best['sql-float32'] / best[mode]:.1f}x",
            ]
        )
    print(
        table(
            f"First search on a cold process, {ROWS:,} x {DIM}, cosine top-10 ({RUNS} runs each)",
            ["load path", "first search", "second search", "vs SQL float32 (goal >= 5x)"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
