"""A set loaded from SQL leaves about its resident size behind, not the heap pages of
the rows it read (measured in a fresh process, so nothing else moves the figure)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shared.memory import release_freed_memory

ROOT = Path(__file__).resolve().parents[2]

LOAD = """
import json, sys
from pathlib import Path
import numpy as np
from shared.db.connection import open_database
from shared.db.migrate import apply_migrations
from shared.embeddings.repository import EmbeddingRepository
from shared.memory import release_freed_memory
from shared.search.cache import IndexCache
from shared.embeddings.service import EmbeddingStore, Limits
from shared.search.repository import SetRepository

def rss_anon():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024

tmp, n, compress_from = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
db = open_database(f"sqlite:///{tmp / 'db.sqlite'}")
apply_migrations(db)
store = EmbeddingStore(EmbeddingRepository(db), Limits(384, n))
rows = np.random.default_rng(1).standard_normal((n, 384), dtype=np.float32)
for s in range(0, n, 5000):
    store.upsert_array("m", "t", [f"e{i}" for i in range(s, s + 5000)], rows[s : s + 5000])
del rows
release_freed_memory()
cache = IndexCache(SetRepository(db), rows_dir=tmp / "rows", compress_from=compress_from)
before = rss_anon()
loaded = cache._load_sql("m", "t")
print(json.dumps({"grew": rss_anon() - before, "kept": loaded.nbytes, "f32": n * 384 * 4}))
"""


def _load(tmp: Path, n: int, compress_from: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", LOAD, str(tmp), str(n), str(compress_from)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_a_compressed_load_from_sql_keeps_about_its_own_size(tmp_path: Path) -> None:
    """Without the trim the process kept ~1.2x the float32 size after this load; the
    compressed set itself is ~0.28x."""
    got = _load(tmp_path, 40_000, 20_000)
    assert got["kept"] < 0.3 * got["f32"]
    assert got["grew"] < 0.6 * got["f32"], got


def test_a_float32_load_from_sql_keeps_about_its_own_size(tmp_path: Path) -> None:
    got = _load(tmp_path, 15_000, 20_000)
    assert got["grew"] < 1.4 * got["f32"], got  # the matrix itself is 1.0x


def test_the_trim_is_available_on_this_linux() -> None:
    assert release_freed_memory() is True
