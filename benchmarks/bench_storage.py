"""Models in Blob Storage vs in a BLOB column, and flat memory for 1 GiB transfers.

1. Database bytes: the same 10 model files (>= 200 MB together) registered with
   their bytes in Azurite (SQL keeps URI, size, sha256) vs stored in a BLOB column.
2. Peak RSS of a process that streams a 1 GiB model up to Azurite and back down,
   measured in a child process (VmHWM) next to its own baseline.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS, MODEL_MB = 10, 21
GIB = 1024**3


def _db_size(path: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def database_bytes(tmp: Path, connection: str) -> tuple[int, int, int]:
    import sqlite3

    from azure.storage.blob import BlobServiceClient

    from shared.db.connection import open_database
    from shared.db.migrate import apply_migrations
    from shared.registry.repository import ModelRepository
    from shared.storage.blob_store import BlobModelStore

    store = BlobModelStore(BlobServiceClient.from_connection_string(connection), "bench-models")
    store.ensure_container()
    db_path = tmp / "blob-refs.db"
    db = open_database(f"sqlite:///{db_path}")
    apply_migrations(db)
    repo = ModelRepository(db)

    blob_db_path = tmp / "blob-column.db"
    conn = sqlite3.connect(blob_db_path)
    conn.execute(
        "CREATE TABLE models (id INTEGER PRIMARY KEY, name TEXT, sha256 TEXT, content BLOB)"
    )
    total = 0
    for i in range(MODELS):
        data = os.urandom(MODEL_MB * 1024 * 1024)
        total += len(data)
        up = store.upload(f"model-{i}.onnx", io.BytesIO(data))
        repo.register(
            f"model-{i}",
            sha256=up.sha256,
            size_bytes=up.size,
            blob_uri=up.uri,
            blob_name=up.name,
            metadata={"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]},
        )
        conn.execute(
            "INSERT INTO models (name, sha256, content) VALUES (?, ?, ?)",
            (f"model-{i}", up.sha256, data),
        )
        conn.commit()
    conn.close()
    db.close()
    return total, _db_size(db_path), _db_size(blob_db_path)


# VmHWM (peak RSS of this process image), not ru_maxrss: Linux carries ru_maxrss over
# exec from the forking parent, which would report the benchmark runner's own size.
CHILD = r"""
import json, sys
from pathlib import Path
from azure.storage.blob import BlobServiceClient
from shared.storage.blob_store import BlobModelStore
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
conn, src, dest = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
store = BlobModelStore(BlobServiceClient.from_connection_string(conn), "bench-big")
store.ensure_container()
base = peak()
with open(src, "rb") as f:
    up = store.upload("big.onnx", f)
after_up = peak()
size, sha = store.download_to("big.onnx", dest)
after_down = peak()
print(json.dumps({"base": base, "upload": after_up, "download": after_down,
                  "same": sha == up.sha256 and size == up.size}))
"""


def peak_rss(tmp: Path, connection: str) -> dict:
    src = tmp / "big.onnx"
    with open(src, "wb") as f:
        chunk = os.urandom(16 * 1024 * 1024)
        for _ in range(GIB // len(chunk)):
            f.write(chunk)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, connection, str(src), str(tmp / "down.onnx")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    src.unlink()
    (tmp / "down.onnx").unlink()
    return json.loads(out.stdout)


def main() -> None:
    from devhost import azurite

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        storage = azurite.start(tmp / "azurite")
        try:
            total, refs, column = database_bytes(tmp, storage.connection_string)
            rss = peak_rss(tmp, storage.connection_string)
        finally:
            storage.stop()
    mb = 1024 * 1024
    print(f"\nDatabase size with {MODELS} models ({total / mb:.0f} MB of model bytes)")
    print(f"{'layout':<38}{'database MB':>14}")
    print(f"{'bytes in a BLOB column':<38}{column / mb:>14.1f}")
    print(f"{'bytes in Blob Storage, URI in SQL':<38}{refs / mb:>14.3f}")
    print(f"database {100 * (1 - refs / column):.2f}% smaller (goal >= 99%)")
    print("\nPeak RSS streaming a 1 GiB model (child process, VmHWM)")
    print(f"{'stage':<38}{'peak RSS MB':>14}")
    print(f"{'baseline (imports, client)':<38}{rss['base'] / mb:>14.1f}")
    print(f"{'after upload':<38}{rss['upload'] / mb:>14.1f}")
    print(f"{'after download':<38}{rss['download'] / mb:>14.1f}")
    print(f"round trip intact: {rss['same']}; goal: peak < 200 MB")


if __name__ == "__main__":
    main()
