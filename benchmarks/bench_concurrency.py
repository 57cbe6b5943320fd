"""Many callers at once: single-query search through the local host over HTTP, with
dynamic batching off and on, side by side in one run.

One set of N = 100k x 384 rows (compressed, in SQLite). For each host: one client at a
time, then CLIENTS clients at once, each for SECONDS; then a burst of BURST clients with
one request each (no 5xx, no dropped connection; 429s are allowed). Both hosts run
PYTHON_THREADPOOL_THREAD_COUNT = CLIENTS worker threads, as a Flex instance would with
perInstanceConcurrency = CLIENTS.
"""

from __future__ import annotations

import http.client
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

N, D, TOP_K, CLIENTS, SECONDS, BURST = 100_000, 384, 10, 16, 8.0, 128


def _fill(db_url: str, vectors: np.ndarray) -> None:
    from shared.db.connection import open_database
    from shared.db.migrate import apply_migrations
    from shared.embeddings.repository import EmbeddingRepository

    db = open_database(db_url)
    apply_migrations(db)
    repo = EmbeddingRepository(db)
    for start in range(0, len(vectors), 20_000):
        block = vectors[start : start + 20_000]
        repo.upsert_many(
            "bench",
            "text",
            [(f"e{start + i}", v.astype("<f4").tobytes()) for i, v in enumerate(block)],
        )
    db.close()


def _client(
    port: int, bodies: list[bytes], until: float, out: list[float], codes: dict, path: str
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json", "x-functions-key": "bench"}
    i = 0
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        try:
            conn.request("POST", path, body=bodies[i % len(bodies)], headers=headers)
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException):
            status = "dropped"
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        codes[status] = codes.get(status, 0) + 1
        if status == 200:
            out.append((time.perf_counter() - t0) * 1000)
        i += 1


def _run(
    port: int, bodies: list[bytes], clients: int, seconds: float, path: str = "/api/search"
) -> dict:
    until = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    codes: list[dict] = [{} for _ in range(clients)]
    threads = [
        threading.Thread(
            target=_client,
            args=(
                port,
                bodies[c % len(bodies) :] + bodies[: c % len(bodies)],
                until,
                latencies[c],
                codes[c],
                path,
            ),
        )
        for c in range(clients)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = sorted(x for lat in latencies for x in lat)
    merged: dict = {}
    for c in codes:
        for k, v in c.items():
            merged[k] = merged.get(k, 0) + v
    return {
        "rps": len(ms) / wall,
        "p50": statistics.median(ms) if ms else float("nan"),
        "p95": ms[int(0.95 * (len(ms) - 1))] if ms else float("nan"),
        "codes": merged,
    }


def _burst(port: int, body: bytes, clients: int) -> dict:
    codes: dict = {}
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def one() -> None:
        start.wait()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": "application/json", "x-functions-key": "bench"}
        try:
            conn.request("POST", "/api/search", body=body, headers=headers)
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException):
            status = "dropped"
        with lock:
            codes[status] = codes.get(status, 0) + 1

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


SENTENCES = [
    "The quarterly report was released on a rainy Tuesday morning in spring.",
    "A small cat slept on the warm windowsill all afternoon long today.",
    "Engineers measured the latency of every request under heavy load.",
    "The train to the coast leaves from platform nine at half past eight.",
]


def _embedding_phases(hosts: dict, connection: str) -> dict:
    """One-sentence text embedding with MiniLM, if its data package is installed: the
    model is registered once (both hosts share storage and SQL), then each host in turn."""
    import urllib.request

    from azure.storage.blob import BlobServiceClient

    from tests.support.pretrained import find_minilm

    found = find_minilm()
    if found is None:
        print("(MiniLM not installed: text embedding skipped)")
        return {}
    model, tokenizer = found
    models = BlobServiceClient.from_connection_string(connection).get_container_client("models")
    if not models.exists():
        models.create_container()
    models.upload_blob("minilm.tokenizer.json", tokenizer.read_bytes(), overwrite=True)
    models.upload_blob("minilm.onnx", model.read_bytes(), overwrite=True)
    port = next(iter(hosts.values())).port
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/models?name=minilm", headers={"x-functions-key": "bench"}
        )
        listed = json.loads(urllib.request.urlopen(req).read())["models"]
        if listed and listed[0]["status"] in ("ready", "failed"):
            break
        time.sleep(1)
    bodies = [json.dumps({"model": "minilm", "texts": [t]}).encode() for t in SENTENCES]
    path = "/api/embeddings/text"
    for h in hosts.values():
        _run(h.port, bodies, 2, 2.0, path)  # warm-up: loads the session
    one = {label: _run(h.port, bodies, 1, SECONDS, path) for label, h in hosts.items()}
    many = {label: _run(h.port, bodies, CLIENTS, SECONDS, path) for label, h in hosts.items()}
    return {label: (one[label], many[label]) for label in hosts}


def main() -> None:
    from devhost import azurite
    from devhost.launcher import launch_app

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((N, D)).astype(np.float32)
    queries = rng.standard_normal((256, D)).astype(np.float32)
    bodies = [
        json.dumps({"vector": q.tolist(), "top_k": TOP_K, "metric": "cosine"}).encode()
        for q in queries
    ]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        db_url = f"sqlite:///{tmp / 'bench.db'}"
        _fill(db_url, vectors)
        storage = azurite.start(tmp / "azurite")
        hosts = {}
        try:
            for label, size in (("batching off", "1"), ("batching on", None)):
                # No snapshot upload while measuring: both hosts load the set from SQL.
                env = {
                    "PYTHON_THREADPOOL_THREAD_COUNT": str(CLIENTS),
                    "SEARCH_SNAPSHOT_SETTLE_SECONDS": "86400",
                }
                if size:
                    env["BATCH_MAX_SIZE"] = size
                folder = tmp / label.replace(" ", "-")
                folder.mkdir()
                hosts[label] = launch_app(
                    folder,
                    storage.connection_string,
                    key="bench",
                    sql_connection=db_url,
                    extra_env=env,
                )
                _run(hosts[label].port, bodies[:4], 1, 2.0)  # warm-up: loads the set
            # Both hosts up at once, each phase run on one then the other: neither is
            # measured on a quieter machine than the other.
            one = {label: _run(h.port, bodies, 1, SECONDS) for label, h in hosts.items()}
            many = {label: _run(h.port, bodies, CLIENTS, SECONDS) for label, h in hosts.items()}
            burst = {label: _burst(h.port, bodies[0], BURST) for label, h in hosts.items()}
            embedding = _embedding_phases(hosts, storage.connection_string)
        finally:
            for h in hosts.values():
                h.stop()
            storage.stop()
    rows = {label: (one[label], many[label], burst[label]) for label in hosts}
    print(f"single-query search, {N:,} x {D} compressed, top {TOP_K}, local host over HTTP")
    print(f"{'':14} {'1 client':>18} {f'{CLIENTS} clients':>20} {'gain':>6}  burst of {BURST}")
    for label, (one, many, burst) in rows.items():
        gain = many["rps"] / one["rps"]
        print(
            f"{label:14} {one['rps']:7.0f} req/s p95 {one['p95']:5.1f} ms"
            f" {many['rps']:7.0f} req/s p95 {many['p95']:6.1f} ms {gain:5.2f}x  {burst}"
        )
    if embedding:
        print(f"one-sentence text embedding (MiniLM), {CLIENTS} clients vs 1")
        for label, (one_e, many_e) in embedding.items():
            print(
                f"{label:14} {one_e['rps']:7.0f} req/s p95 {one_e['p95']:5.1f} ms"
                f" {many_e['rps']:7.0f} req/s p95 {many_e['p95']:6.1f} ms"
                f" {many_e['rps'] / one_e['rps']:5.2f}x  {many_e['codes']}"
            )
    off, on = rows["batching off"][1], rows["batching on"][1]
    print(
        f"batching on / off at {CLIENTS} clients: throughput {on['rps'] / off['rps']:.2f}x,"
        f" p95 {on['p95'] / off['p95']:.2f}x"
    )
