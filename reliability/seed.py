"""What the load needs before it starts: a stored embedding set to search and a real ONNX
model registered and ready to infer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reliability.stack import Stack

SEARCH_MODEL = "reliability-search"
SEARCH_TYPE = "text"
INFER_MODEL = "reliability-iris"


def seed_search(db: Path, rows: int, dim: int, chunk: int = 10_000) -> None:
    """Write `rows` random float32 vectors straight into the host's SQLite file before the
    host starts (as benchmarks/bench_http.py does): seeding is not what is measured."""
    from shared.db.connection import open_database
    from shared.db.migrate import apply_migrations
    from shared.embeddings.repository import EmbeddingRepository

    database = open_database(f"sqlite:///{db}")
    try:
        apply_migrations(database)
        repo = EmbeddingRepository(database)
        rng = np.random.default_rng(0)
        for start in range(0, rows, chunk):
            block = rng.standard_normal((min(chunk, rows - start), dim), dtype=np.float32)
            items = [(f"e{start + i}", v.astype("<f4").tobytes()) for i, v in enumerate(block)]
            repo.upsert_many(SEARCH_MODEL, SEARCH_TYPE, items)
    finally:
        database.close()


@dataclass(frozen=True)
class InferTarget:
    name: str
    input_name: str
    features: int


def register_model(stack: Stack, timeout: float = 120) -> InferTarget:
    """Upload the iris MLP classifier through `POST /api/models` and wait until its
    ingestion job made it `ready` (sessions load on first inference)."""
    from tests.support.models import write_classifier

    path = write_classifier(stack.tmp, f"{INFER_MODEL}.onnx")
    reply = stack.call("POST", f"/models?name={INFER_MODEL}", raw=path.read_bytes())
    if reply.status not in (200, 201, 202):
        raise RuntimeError(f"model upload answered {reply.status}: {reply.body[:300]!r}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        models = stack.call("GET", f"/models?name={INFER_MODEL}").json()["models"]
        if models and models[0]["status"] == "failed":
            raise RuntimeError(f"the model failed ingestion: {models[0].get('error')}")
        if models and models[0]["status"] == "ready":
            meta = stack.call("GET", f"/v2/models/{INFER_MODEL}").json()
            (tensor,) = meta["inputs"]
            return InferTarget(INFER_MODEL, tensor["name"], int(tensor["shape"][-1]))
        time.sleep(0.2)
    raise TimeoutError(f"model {INFER_MODEL} was not ready within {timeout} s")
