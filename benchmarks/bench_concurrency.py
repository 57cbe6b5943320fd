"""Many callers at once: single-query search through the local host over HTTP, with
dynamic batching off and on, side by side in one run.

One set of N = 100k x 384 rows (compressed, in SQLite). For each host: one client at a
time, then CLIENTS clients at once, each for SECONDS, in ROUNDS rounds (the hosts in turn,
first one then the other): each figure is the median round, so the 1 vs CLIENTS ratio
holds even when the machine's speed drifts during the run. Then a burst of BURST clients
with one request each (no 5xx, no dropped connection; 429s are allowed). Then the same one vs
CLIENTS comparison for one-sentence MiniLM text embedding (when its data package is
installed) and for Open Inference Protocol calls of the iris MLP classifier with one FP32
row each (every answer 200, and the batched host's labels equal the unbatched host's).
Both hosts run PYTHON_THREADPOOL_THREAD_COUNT = CLIENTS worker threads and
INSTANCE_MEMORY_MB = INSTANCE_MB, as a default Flex instance would with
perInstanceConcurrency = CLIENTS; a thread per host samples the resident memory of the
host's process tree every SAMPLE_SECONDS, and a peak above INSTANCE_MB fails the run.

BENCH_QUICK=1 is a smoke run (N = 10k, SECONDS = 1.5, one round): every phase and check,
no figures worth keeping.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

QUICK = os.environ.get("BENCH_QUICK", "").strip() not in ("", "0")
N, D, TOP_K, CLIENTS, SECONDS, BURST = (
    10_000 if QUICK else 100_000,
    384,
    10,
    16,
    1.5 if QUICK else 4.0,
    128,
)
ROUNDS = 1 if QUICK else 3
INSTANCE_MB = 2048  # the default Flex Consumption instance size
SAMPLE_SECONDS = 0.05
OIP_MODEL = "iris"


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


def _rounds(hosts: dict, bodies: list[bytes], path: str = "/api/search") -> dict:
    """Each host's (1 client, CLIENTS clients): ROUNDS rounds of both, the hosts in turn
    and their order swapped each round; per phase the median round's req/s and p95 (the
    "rps" of every round kept too) and every round's status codes."""
    runs: dict = {(label, c): [] for label in hosts for c in (1, CLIENTS)}
    for r in range(ROUNDS):
        order = list(hosts.items()) if r % 2 == 0 else list(hosts.items())[::-1]
        for clients in (1, CLIENTS):
            for label, h in order:
                runs[(label, clients)].append(_run(h.port, bodies, clients, SECONDS, path))
    merged = {}
    for key, results in runs.items():
        codes: dict = {}
        for res in results:
            for k, v in res["codes"].items():
                codes[k] = codes.get(k, 0) + v
        merged[key] = {
            "rps": statistics.median(res["rps"] for res in results),
            "p95": statistics.median(res["p95"] for res in results),
            "rounds": [res["rps"] for res in results],
            "codes": codes,
        }
    return {label: (merged[(label, 1)], merged[(label, CLIENTS)]) for label in hosts}


def _each_round(one: dict, many: dict) -> str:
    def rates(phase: dict) -> str:
        return "/".join(f"{r:.0f}" for r in phase["rounds"])

    return f"{'':14} rounds: 1 client {rates(one)}, {CLIENTS} clients {rates(many)} req/s"


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
    from tests.support.pretrained import find_minilm

    found = find_minilm()
    if found is None:
        print("(MiniLM not installed: text embedding skipped)")
        return {}
    model, tokenizer = found
    _upload(connection, "minilm.tokenizer.json", tokenizer.read_bytes())
    _upload(connection, "minilm.onnx", model.read_bytes())
    _wait_registered(next(iter(hosts.values())).port, "minilm")
    bodies = [json.dumps({"model": "minilm", "texts": [t]}).encode() for t in SENTENCES]
    path = "/api/embeddings/text"
    for h in hosts.values():
        _run(h.port, bodies, 2, 2.0, path)  # warm-up: loads the session
    return _rounds(hosts, bodies, path)


def _upload(connection: str, blob: str, data: bytes) -> None:
    """Into the models container, where the blob trigger registers the model (both hosts
    share storage and SQL, so one registration serves both)."""
    from azure.storage.blob import BlobServiceClient

    models = BlobServiceClient.from_connection_string(connection).get_container_client("models")
    if not models.exists():
        models.create_container()
    models.upload_blob(blob, data, overwrite=True)


def _wait_registered(port: int, name: str, timeout: float = 300) -> str:
    """The model's status once it is "ready" or "failed" (or the last one seen)."""
    import urllib.request

    status = "not listed"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/models?name={name}", headers={"x-functions-key": "bench"}
        )
        listed = json.loads(urllib.request.urlopen(req).read())["models"]
        status = listed[0]["status"] if listed else "not listed"
        if status in ("ready", "failed"):
            break
        time.sleep(1)
    return status


def _infer_body(input_name: str, row: np.ndarray) -> bytes:
    tensor = {"name": input_name, "shape": [1, 4], "datatype": "FP32", "data": row.tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def _labels(port: int, bodies: list[bytes], clients: int, path: str, rounds: int = 4) -> tuple:
    """Every body sent `rounds` times by each of `clients` callers at once, each starting
    at another body (so calls of different rows share batches): the set of labels each
    body was answered with, and the status codes."""
    labels: dict[int, set] = {j: set() for j in range(len(bodies))}
    codes: dict = {}
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def one(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": "application/json", "x-functions-key": "bench"}
        start.wait()
        for k in range(rounds * len(bodies)):
            j = (c + k) % len(bodies)
            label = None
            try:
                conn.request("POST", path, body=bodies[j], headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                status = resp.status
                if status == 200:
                    outputs = json.loads(raw)["outputs"]
                    label = next(o for o in outputs if o["name"] == "label")["data"][0]
            except (OSError, http.client.HTTPException):
                status = "dropped"
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            with lock:
                codes[status] = codes.get(status, 0) + 1
                if label is not None:
                    labels[j].add(label)

    threads = [threading.Thread(target=one, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return labels, codes


def _oip_phases(hosts: dict, connection: str, folder: Path) -> tuple[dict, dict[int, set]]:
    """Open Inference Protocol calls of the iris MLP classifier, one FP32 row each (JSON):
    registered once, then a labels check with CLIENTS callers at once on each host, then
    one client vs CLIENTS on each host in turn. Returns each host's (1 client, CLIENTS
    clients, labels per sample row, the labels check's codes) and the labels a bare
    onnxruntime run gives the sample rows. Raises if the model does not become ready."""
    import urllib.request

    import onnxruntime as ort

    from tests.support.models import iris, write_classifier

    path = write_classifier(folder, f"{OIP_MODEL}.onnx")
    _upload(connection, path.name, path.read_bytes())
    port = next(iter(hosts.values())).port
    status = _wait_registered(port, OIP_MODEL)
    if status != "ready":
        raise SystemExit(f"bench_concurrency FAILED: model {OIP_MODEL} is {status}, not ready")
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v2/models/{OIP_MODEL}", headers={"x-functions-key": "bench"}
    )
    (meta_input,) = json.loads(urllib.request.urlopen(req).read())["inputs"]
    x, _ = iris()
    # Up to three rows of each label the model predicts (it predicts some labels for few
    # rows), so a row answered with another caller's label shows in the check.
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    predicted = session.run(["label"], {meta_input["name"]: x})[0]
    sample = [int(i) for k in np.unique(predicted) for i in np.flatnonzero(predicted == k)[:3]]
    expected = {j: {int(predicted[i])} for j, i in enumerate(sample)}
    bodies = [_infer_body(meta_input["name"], x[i]) for i in sample]
    infer = f"/api/v2/models/{OIP_MODEL}/infer"
    for h in hosts.values():
        _run(h.port, bodies, 2, 2.0, infer)  # warm-up: loads the session
    labels = {label: _labels(h.port, bodies, CLIENTS, infer) for label, h in hosts.items()}
    phases = _rounds(hosts, bodies, infer)
    return {label: (*phases[label], *labels[label]) for label in hosts}, expected


def _process_tree(root: int) -> list[int]:
    """`root` and its descendants, from each process's parent in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while listed
        # The command name is in parentheses and may hold spaces: the fields after it.
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


RSS = ("VmRSS", "RssAnon")


def _resident_kb(pid: int) -> tuple[int, int]:
    """VmRSS and RssAnon of one process in kB (0, 0 once it has exited)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0, 0
    kb = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in lines) if k in RSS}
    return kb.get("VmRSS", 0), kb.get("RssAnon", 0)


class _Memory:
    """Peak resident memory of one host's process tree, in MB: sampled every
    SAMPLE_SECONDS on a background thread until `stop()`, kept per `phase` (set by the
    caller; None between phases) and over the whole watch ("whole run"). RSS counts the
    mapped pages of files (the compressed set's float32 rows, model files) as well as
    anonymous memory, so the anonymous peak is kept too."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.phase: str | None = None
        self.peaks: dict[str, float] = {}
        self.peak_anon = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        tree: list[int] = []
        listed = 0.0
        while True:
            now = time.monotonic()
            if now - listed >= 1.0:  # listing /proc costs far more than one sample
                tree, listed = _process_tree(self.pid), now
            rss = anon = 0
            for pid in tree:
                r, a = _resident_kb(pid)
                rss, anon = rss + r, anon + a
            mb, phase = rss / 1024, self.phase
            for key in ("whole run", phase) if phase else ("whole run",):
                self.peaks[key] = max(self.peaks.get(key, 0.0), mb)
            self.peak_anon = max(self.peak_anon, anon / 1024)
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def _phase(watchers: list[_Memory], name: str) -> Iterator[None]:
    """Peaks sampled meanwhile count toward `name` (every host: the phases interleave)."""
    for w in watchers:
        w.phase = name
    try:
        yield
    finally:
        for w in watchers:
            w.phase = None


def _bounds(env: dict[str, str]) -> str:
    """The bounds the app holds its caches to, derived as a host with `env` derives them
    (the same settings code, over the environment `launch_app` gives it)."""
    from shared.settings import MiB, Settings

    s = Settings.from_env({**os.environ, **env})
    return (
        f"search cache {s.search_cache_bytes / MiB:.0f} MiB (SEARCH_CACHE_BYTES),"
        f" idle pooled buffers {s.buffer_pool_bytes / MiB:.0f} MiB (BUFFER_POOL_BYTES),"
        f" {s.max_sessions} ONNX sessions (MAX_SESSIONS),"
        f" model file cache {s.model_cache_bytes / MiB:.0f} MiB on disk (MODEL_CACHE_BYTES)"
    )


def search_data() -> tuple[np.ndarray, list[bytes]]:
    """The N x D set and 256 single-query search bodies (the same seed on every run)."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((N, D)).astype(np.float32)
    queries = rng.standard_normal((256, D)).astype(np.float32)
    bodies = [
        json.dumps({"vector": q.tolist(), "top_k": TOP_K, "metric": "cosine"}).encode()
        for q in queries
    ]
    return vectors, bodies


def main() -> None:
    from devhost import azurite
    from devhost.launcher import launch_app

    vectors, bodies = search_data()
    envs: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        db_url = f"sqlite:///{tmp / 'bench.db'}"
        _fill(db_url, vectors)
        storage = azurite.start(tmp / "azurite")
        hosts = {}
        watchers: dict[str, _Memory] = {}
        try:
            for label, size in (("batching off", "1"), ("batching on", None)):
                # No snapshot upload while measuring: both hosts load the set from SQL.
                env = {
                    "PYTHON_THREADPOOL_THREAD_COUNT": str(CLIENTS),
                    "SEARCH_SNAPSHOT_SETTLE_SECONDS": "86400",
                    "INSTANCE_MEMORY_MB": str(INSTANCE_MB),
                }
                if QUICK:  # the smoke run's smaller set is still searched compressed
                    env["SEARCH_COMPRESS_FROM_ROWS"] = str(N)
                if size:
                    env["BATCH_MAX_SIZE"] = size
                envs[label] = env
                folder = tmp / label.replace(" ", "-")
                folder.mkdir()
                hosts[label] = launch_app(
                    folder,
                    storage.connection_string,
                    key="bench",
                    sql_connection=db_url,
                    extra_env=env,
                )
                watchers[label] = _Memory(hosts[label].process.pid)
                _run(hosts[label].port, bodies[:4], 1, 2.0)  # warm-up: loads the set
            # Both hosts up at once, each phase run on both in turn, round after round
            # (`_rounds`): neither is measured on a quieter machine than the other.
            watching = list(watchers.values())
            with _phase(watching, f"search {CLIENTS}"):
                search = _rounds(hosts, bodies)
            with _phase(watching, f"burst {BURST}"):
                burst = {label: _burst(h.port, bodies[0], BURST) for label, h in hosts.items()}
            with _phase(watching, "embedding"):
                embedding = _embedding_phases(hosts, storage.connection_string)
            with _phase(watching, "OIP"):
                oip, expected = _oip_phases(hosts, storage.connection_string, tmp)
        finally:
            for w in watchers.values():
                w.stop()
            for h in hosts.values():
                h.stop()
            storage.stop()
    failures: list[str] = []
    rows = {label: (*search[label], burst[label]) for label in hosts}
    print(f"single-query search, {N:,} x {D} compressed, top {TOP_K}, local host over HTTP")
    print(f"{'':14} {'1 client':>18} {f'{CLIENTS} clients':>20} {'gain':>6}  burst of {BURST}")
    for label, (one, many, burst) in rows.items():
        gain = many["rps"] / one["rps"]
        print(
            f"{label:14} {one['rps']:7.0f} req/s p95 {one['p95']:5.1f} ms"
            f" {many['rps']:7.0f} req/s p95 {many['p95']:6.1f} ms {gain:5.2f}x  {burst}"
        )
        print(_each_round(one, many))
        bad = {k: v for k, v in burst.items() if k == "dropped" or k >= 500}
        if bad:
            failures.append(f"{label}: burst of {BURST} got {bad}")
    if embedding:
        print(f"one-sentence text embedding (MiniLM), {CLIENTS} clients vs 1")
        for label, (one_e, many_e) in embedding.items():
            print(
                f"{label:14} {one_e['rps']:7.0f} req/s p95 {one_e['p95']:5.1f} ms"
                f" {many_e['rps']:7.0f} req/s p95 {many_e['p95']:6.1f} ms"
                f" {many_e['rps'] / one_e['rps']:5.2f}x  {many_e['codes']}"
            )
            print(_each_round(one_e, many_e))
    print(
        f"Open Inference Protocol, iris MLP, one FP32 row per call (JSON), {CLIENTS} clients vs 1"
    )
    for label, (one_o, many_o, labels, label_codes) in oip.items():
        print(
            f"{label:14} {one_o['rps']:7.0f} req/s p95 {one_o['p95']:5.1f} ms"
            f" {many_o['rps']:7.0f} req/s p95 {many_o['p95']:6.1f} ms"
            f" {many_o['rps'] / one_o['rps']:5.2f}x  {many_o['codes']}"
        )
        print(_each_round(one_o, many_o))
        for phase, codes in (("1 client", one_o["codes"]), (f"{CLIENTS} clients", many_o["codes"])):
            if set(codes) != {200}:
                failures.append(f"{label}: OIP {phase} got {codes}, not only 200")
        if set(label_codes) != {200}:
            failures.append(f"{label}: OIP labels check got {label_codes}, not only 200")
        if any(len(got) != 1 for got in labels.values()):
            failures.append(f"{label}: a sample row got more than one label: {labels}")
    unbatched, batched = oip["batching off"][2], oip["batching on"][2]
    print(
        f"labels of the {len(batched)} sample rows, {CLIENTS} callers at once:"
        f" batching on {[sorted(v) for v in batched.values()]},"
        f" off {[sorted(v) for v in unbatched.values()]},"
        f" onnxruntime alone {[sorted(v) for v in expected.values()]}"
    )
    if batched != unbatched:
        failures.append("OIP: the batched host's labels differ from the unbatched host's")
    if unbatched != expected:
        failures.append("OIP: the unbatched host's labels differ from onnxruntime's")
    off, on = rows["batching off"][1], rows["batching on"][1]
    print(
        f"batching on / off at {CLIENTS} clients: throughput {on['rps'] / off['rps']:.2f}x,"
        f" p95 {on['p95'] / off['p95']:.2f}x"
    )
    phases = [f"search {CLIENTS}", f"burst {BURST}", "embedding", "OIP", "whole run"]
    print(
        f"peak RSS of each host's process tree, MB (sampled every {SAMPLE_SECONDS * 1000:.0f} ms),"
        f" INSTANCE_MEMORY_MB={INSTANCE_MB}"
    )
    bounds = {label: _bounds(env) for label, env in envs.items()}
    if len(set(bounds.values())) == 1:
        print(f"  bounds on both hosts: {next(iter(bounds.values()))}")
    else:
        for label, line in bounds.items():
            print(f"  bounds, {label}: {line}")
    print(f"{'':14}" + "".join(f" {p:>11}" for p in phases) + f" {'anon':>7}")
    for label, w in watchers.items():
        peaks = "".join(f" {w.peaks[p]:11.0f}" if p in w.peaks else f" {'-':>11}" for p in phases)
        print(f"{label:14}{peaks} {w.peak_anon:7.0f}")
        if w.peaks.get("whole run", 0.0) > INSTANCE_MB:
            failures.append(
                f"{label}: peak RSS {w.peaks['whole run']:.0f} MB is over the"
                f" {INSTANCE_MB} MB instance"
            )
    if failures:
        raise SystemExit("bench_concurrency FAILED:\n  " + "\n  ".join(failures))
