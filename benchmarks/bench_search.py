"""Exact top-k scan throughput vs this machine's memory bandwidth and vs faiss IndexFlatIP.

* Bandwidth reference: a BLAS gemv (2 threads) over a 1 GiB float32 matrix, in this run
  (the faster of its two shapes).
* Single query: ``search.search`` (gemv + top-k + float64 re-score) in GB/s of stored
  vectors read, against faiss ``IndexFlatIP`` with one thread (its SIMD scan), and against
  our own code limited to one BLAS thread too.
* Batch of 64: ``search.search_batch`` (blocked gemm) vs faiss with 2 threads and
  ``distance_compute_blas_threshold = 0`` (its gemm path); and per-query throughput of the
  batch vs single queries.
* Recall@10 of each result against a float64 brute-force reference.
Goals: >= 70% of bandwidth single-query, >= 1.0x faiss, recall@10 = 1.0, batch >= 5x
per-query throughput. faiss and threadpoolctl are benchmark-only dependencies.

Compressed (int8) engine, side by side with the float32 scan in the same run
(``python -m benchmarks search`` prints it after the table above): single-query time
(goal <= 0.6x float32 at 1M), batch-of-64 per-query gain (goal >= 5x at 100k), resident
memory of a loaded set with its float32 rows memory-mapped (tracemalloc and RssAnon;
goal <= 0.35x the float32 size), recall@10 vs float64 (= 1), and the row count where
the compressed scan starts to win (``SEARCH_COMPRESS_FROM_ROWS``), and a euclidean
batch with its values in float32 against float64.
"""

from __future__ import annotations

import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shared.search import exact as search
from shared.search import int8_scan, quantized
from shared.search.rowfile import write_rows

from .timing import blas_info, fmt_time, interleaved, per_call, table

D = 384
SIZES = (100_000, 1_000_000)
K = 10
NQ = 64
RECALL_QUERIES = 16
THREADS = 2
GiB = 1 << 30


def bandwidth() -> float:
    """Bytes per second of a 2-thread BLAS gemv streaming a 1 GiB float32 matrix: the
    fastest of three shapes (a dot per 1024-wide row; a long axpy-shaped sum of rows; and
    the short-and-wide shape the scan itself runs), so the reference is the highest read
    rate BLAS reaches here, not a shape chosen to flatter the scan."""
    m = np.ones((GiB // 4 // 1024, 1024), np.float32)
    wide = m.reshape(256, -1)
    rows, cols, short = (np.ones(n, np.float32) for n in (1024, m.shape[0], 256))
    outs = [np.empty(n, np.float32) for n in (m.shape[0], 1024, wide.shape[1])]
    calls = [
        lambda: np.matmul(m, rows, out=outs[0]),
        lambda: np.matmul(cols, m, out=outs[1]),
        lambda: np.matmul(short, wide, out=outs[2]),
    ]
    return m.nbytes / min(per_call(c, repeat=5, min_time=0.2) for c in calls)


def reference(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """float64 brute-force top-k by dot product (ties by row index), blockwise in memory."""
    q64 = queries.astype(np.float64)
    best_s = np.full((len(queries), 0), -np.inf)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(data), 65_536):
        s = data[start : start + 65_536].astype(np.float64) @ q64.T
        idx = np.arange(start, start + len(s))
        all_s = np.concatenate([best_s, s.T], axis=1)
        all_i = np.concatenate([best_i, np.broadcast_to(idx, (len(queries), len(idx)))], axis=1)
        order = np.lexsort((all_i, -all_s), axis=1)[:, :k]
        best_s = np.take_along_axis(all_s, order, axis=1)
        best_i = np.take_along_axis(all_i, order, axis=1)
    return best_i


def recall(got: list[np.ndarray], want: np.ndarray) -> float:
    return float(np.mean([len(set(g[:K]) & set(w)) / K for g, w in zip(got, want, strict=False)]))


def measure(n: int, rng: np.random.Generator, bw: float) -> list[str]:
    """One table row: timings, ratios and recall at ``n`` rows."""
    import faiss
    from threadpoolctl import threadpool_limits

    data = rng.standard_normal((n, D), dtype=np.float32)
    queries = rng.standard_normal((NQ, D), dtype=np.float32)
    prepared = search.prepare(data, "dot")
    index = faiss.IndexFlatIP(D)
    index.add(data)
    counter = iter(range(10**9))

    def ours_single() -> object:
        return search.search(prepared, queries[next(counter) % NQ], K)

    def faiss_single() -> object:
        return index.search(queries[next(counter) % NQ][None, :], K)

    t_ours = per_call(ours_single, repeat=5, min_time=0.3)
    with threadpool_limits(1, user_api="blas"):
        t_ours_1t = per_call(ours_single, repeat=5, min_time=0.3)
    faiss.omp_set_num_threads(1)
    t_faiss = per_call(faiss_single, repeat=5, min_time=0.3)

    t_batch = per_call(lambda: search.search_batch(prepared, queries, K), repeat=3)
    faiss.omp_set_num_threads(THREADS)
    faiss.cvar.distance_compute_blas_threshold = 0
    t_faiss_batch = per_call(lambda: index.search(queries, K), repeat=3)

    sub = queries[:RECALL_QUERIES]
    want = reference(data, sub, K)
    r_single = recall([search.search(prepared, q, K).indices for q in sub], want)
    r_batch = recall([r.indices for r in search.search_batch(prepared, sub, K)], want)
    r_faiss = recall(list(index.search(sub, K)[1]), want)

    gbs = data.nbytes / t_ours
    gain = (NQ / t_batch) / (1 / t_ours)
    return [
        f"{n:,}",
        fmt_time(t_ours),
        f"{gbs / 1e9:.1f} GB/s",
        f"{gbs / bw:.0%} {_goal(gbs / bw >= 0.7)}",
        fmt_time(t_faiss),
        f"{t_faiss / t_ours:.2f}x {_goal(t_faiss >= t_ours)}",
        f"{t_faiss / t_ours_1t:.2f}x",
        fmt_time(t_batch),
        fmt_time(t_faiss_batch),
        f"{t_faiss_batch / t_batch:.2f}x",
        f"{gain:.1f}x {_goal(gain >= 5)}",
        f"{r_single:.3f} / {r_batch:.3f} / {r_faiss:.3f} {_goal(min(r_single, r_batch) == 1)}",
    ]


def _goal(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    import faiss
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(11)
    with threadpool_limits(THREADS, user_api="blas"):
        print(blas_info(), f"| faiss {faiss.__version__}")
        bw = bandwidth()
        print(f"memory read bandwidth (gemv over 1 GiB, {THREADS} threads): {bw / 1e9:.1f} GB/s")
        rows = [measure(n, rng, bw) for n in SIZES]
    print(
        table(
            f"Exact top-{K} dot-product scan, d={D} (ours: {THREADS} BLAS threads unless noted; "
            "faiss single: 1 thread; faiss batch: 2 threads, BLAS path)",
            [
                "rows",
                "ours 1 query",
                "scan rate",
                "of bandwidth (>=70%)",
                "faiss 1 query",
                "faiss/ours (>=1)",
                "faiss/ours, ours 1 thread",
                f"ours {NQ} queries",
                f"faiss {NQ} queries",
                "faiss/ours batch",
                "batch per-query gain (>=5)",
                "recall@10 single / batch / faiss (=1)",
            ],
            rows,
        )
    )
    print(
        table(
            f"One cosine query on a small set, top-{K}: every row scored in float64 at once"
            " vs the float32 scan with its band and re-score, interleaved",
            ["rows x d", "scan path", "direct", "direct/scan", "search uses"],
            small_sets(rng),
        )
    )
    main_compressed()


#: Small sets (rows x dimension) on both sides of ``DIRECT_VALUES`` (65,536 values).
SMALL_SETS = ((50, 384), (150, 384), (400, 384), (1_000, 32), (4_000, 32))


def small_sets(rng: np.random.Generator) -> list[list[str]]:
    """Both paths of ``search`` on the same small sets, with the same answer."""
    return [_small_set_row(n, d, rng) for n, d in SMALL_SETS]


def _small_set_row(n: int, d: int, rng: np.random.Generator) -> list[str]:
    from shared.vectors.pool import BufferPool

    m = rng.standard_normal((n, d)).astype(np.float32)
    prepared, q, pool = search.prepare(m, "cosine"), m[0] + rng.standard_normal(d), BufferPool()

    def under(limit: int) -> Callable[[], search.SearchResult]:
        def call() -> search.SearchResult:
            saved, search.DIRECT_VALUES = search.DIRECT_VALUES, limit
            try:
                return search.search(prepared, q, K, pool=pool)
            finally:
                search.DIRECT_VALUES = saved

        return call

    scan, direct = under(0), under(n * d)
    a, b = direct(), scan()
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.distances, b.distances)
    t = interleaved({"scan": scan, "direct": direct}, rounds=7, min_time=0.02)
    used = "direct" if n * d <= search.DIRECT_VALUES else "scan"
    ratio = t["direct"] / t["scan"]
    return [f"{n:,} x {d}", fmt_time(t["scan"]), fmt_time(t["direct"]), f"{ratio:.2f}x", used]


def _rss_anon() -> int:
    """Anonymous resident bytes of this process (heap, not file-backed pages)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def compressed_row(n: int, rng: np.random.Generator, rows_dir: Path) -> list[str]:
    """One row of the compressed table: float32 vs int8 at ``n`` rows, side by side."""
    data = rng.standard_normal((n, D), dtype=np.float32)
    queries = rng.standard_normal((NQ, D), dtype=np.float32)
    prepared = search.prepare(data, "dot")
    mapped = write_rows(rows_dir, data)
    rss0 = _rss_anon()
    tracemalloc.start()
    qr = quantized.quantize(mapped, keep=mapped)
    ids = [f"e{i}" for i in range(n)]  # the cache keeps the ids too
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss = _rss_anon() - rss0
    counter = iter(range(10**9))
    best = interleaved(
        {
            "f32": lambda: search.search(prepared, queries[next(counter) % NQ], K),
            "int8": lambda: quantized.search(qr, queries[next(counter) % NQ], K, "dot"),
            "int8 batch": lambda: quantized.search_batch(qr, queries, K, "dot"),
        },
        rounds=5,
        min_time=0.3,
    )
    sub = queries[:RECALL_QUERIES]
    want = reference(data, sub, K)
    r_single = recall([quantized.search(qr, q, K, "dot").indices for q in sub], want)
    r_batch = recall([r.indices for r in quantized.search_batch(qr, sub, K, "dot")], want)
    ratio = best["int8"] / best["f32"]
    gain = NQ * best["int8"] / best["int8 batch"]
    mem = traced / data.nbytes
    del ids
    return [
        f"{n:,}",
        fmt_time(best["f32"]),
        fmt_time(best["int8"]),
        f"{ratio:.2f}x {_goal(ratio <= 0.6)}",
        fmt_time(best["int8 batch"]),
        f"{gain:.1f}x {_goal(gain >= 5)}",
        f"{traced / 1e6:.0f} MB = {mem:.2f}x {_goal(mem <= 0.35)}",
        f"{rss / 1e6:.0f} MB = {rss / data.nbytes:.2f}x",
        f"{r_single:.3f} / {r_batch:.3f} {_goal(min(r_single, r_batch) == 1)}",
    ]


def crossover(rng: np.random.Generator) -> list[list[str]]:
    """Single-query time of both engines on small sets (where the fixed costs tell)."""
    from threadpoolctl import threadpool_limits

    # One BLAS thread: with two, a gemv over a few thousand rows mostly waits for the
    # second thread to wake, which would flatter the compressed scan.
    with threadpool_limits(1, user_api="blas"):
        return [_crossover_row(n, rng) for n in (2_000, 5_000, 10_000, 20_000, 50_000)]


def _crossover_row(n: int, rng: np.random.Generator) -> list[str]:
    data = rng.standard_normal((n, D), dtype=np.float32)
    queries = rng.standard_normal((NQ, D), dtype=np.float32)
    prepared, qr = search.prepare(data, "cosine"), quantized.quantize(data)
    counter = iter(range(10**9))
    best = interleaved(
        {
            "f32": lambda: search.search(prepared, queries[next(counter) % NQ], K),
            "int8": lambda: quantized.search(qr, queries[next(counter) % NQ], K, "cosine"),
        },
        rounds=5,
        min_time=0.1,
    )
    ratio = best["int8"] / best["f32"]
    return [f"{n:,}", fmt_time(best["f32"]), fmt_time(best["int8"]), f"{ratio:.2f}x"]


def euclidean_values(rng: np.random.Generator) -> list[list[str]]:
    """A euclidean batch with its values in float32 against the same batch with them in
    float64 (what it falls back to when a magnitude leaves float32's range), interleaved,
    on 200k rows of varied norms; both must return the same rows."""
    n = 200_000
    data = rng.standard_normal((n, D), dtype=np.float32) * rng.uniform(0.8, 1.2, (n, 1))
    qr = quantized.quantize(data.astype(np.float32))
    queries = rng.standard_normal((16, D), dtype=np.float32)
    float32 = quantized._euclid_error32

    def with_values(chosen: Callable, nq: int) -> Callable[[], list]:
        def run() -> list:
            quantized._euclid_error32 = chosen
            try:
                return quantized.search_batch(qr, queries[:nq], K, "euclidean")
            finally:
                quantized._euclid_error32 = float32

        return run

    rows = []
    for nq in (8, 16):
        fns = {"f64": with_values(lambda *_: None, nq), "f32": with_values(float32, nq)}
        same = all(
            np.array_equal(a.indices, b.indices)
            for a, b in zip(fns["f64"](), fns["f32"](), strict=True)
        )
        best = interleaved(fns, rounds=5, min_time=0.3)
        ratio = best["f32"] / best["f64"]
        rows.append(
            [
                f"{n:,} x {D}",
                str(nq),
                fmt_time(best["f64"]),
                fmt_time(best["f32"]),
                f"{ratio:.2f}x",
                "yes" if same else "NO",
            ]
        )
    return rows


def adversarial(rng: np.random.Generator) -> str:
    """Exact answers on a set built to break integer kernels that saturate: 25,000 rows
    at d=384 whose codes sit at the ends of their range in runs, 16 queries whose 8-bit
    codes do too, every metric, single and batched (the float64 top 10 or not)."""
    n, d, nq = 25_000, D, 16
    runs = np.repeat(rng.choice([-1.0, 1.0], (n, d // 8)), 8, axis=1)
    data = (runs * rng.uniform(0.9, 1.0, (n, d))).astype(np.float32)
    queries = np.repeat(rng.choice([-1.0, 1.0], (nq, d // 4)), 4, axis=1)
    queries = (queries * rng.uniform(0.5, 1.0, (nq, d))).astype(np.float32)
    qr = quantized.quantize(data)
    exact = total = 0
    for metric in ("cosine", "dot", "euclidean"):
        want = [_brute_force(data, q, metric) for q in queries]
        got = [r.indices for r in quantized.search_batch(qr, queries, K, metric)]
        got += [quantized.search(qr, q, K, metric).indices for q in queries]
        exact += sum(np.array_equal(g, w) for g, w in zip(got, want + want, strict=True))
        total += len(got)
    return f"{exact}/{total} {_goal(exact == total)}"


def _brute_force(data: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    x, y = data.astype(np.float64), q.astype(np.float64)
    if metric == "euclidean":
        key = np.linalg.norm(x - y, axis=1)
    elif metric == "dot":
        key = -(x @ y)
    else:
        key = -(x @ y) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y))
    return np.lexsort((np.arange(len(x)), key))[:K]


#: CPU paths the compressed table is printed for, where this machine can show them.
CPU_PATHS = ("native", "avx512-no-vnni", "avx2")


def main_compressed() -> None:
    """The compressed tables once per CPU path (``cpu_paths``), each in a process that
    sees that CPU, so the kernels each CPU gets are measured side by side."""
    from . import cpu_paths

    if not cpu_paths.available():
        print("(this CPU cannot show other CPU paths: no CPUID faulting; native only)")
        compressed_tables("native")
        return
    for path in CPU_PATHS:
        done = cpu_paths.run(path, ["-m", "benchmarks.bench_search", "--compressed", path])
        print(done.stdout, end="", flush=True)
        if done.returncode:
            print(f"(the {path} run failed: {done.stderr[-2000:]})")


def compressed_tables(path: str) -> None:
    from threadpoolctl import threadpool_limits

    from .cpu_paths import flags_seen

    one, batch = (int8_scan.engines(use).pick(D).name for use in ("one", "batch"))
    rng = np.random.default_rng(12)
    with threadpool_limits(THREADS, user_api="blas"), tempfile.TemporaryDirectory() as tmp:
        rows = [compressed_row(n, rng, Path(tmp)) for n in SIZES]
        small = crossover(rng)
        euclid = euclidean_values(rng)
        exact = adversarial(rng)
    print(
        f"\nCPU path {path}: the libraries see {flags_seen()}; integer engines: one query "
        f"{one}, batch {batch}; adversarial set (codes at the ends of their range) exact: "
        f"{exact}"
    )
    print(
        table(
            f"Compressed exact search (int8 scan + float64 re-score) vs the float32 scan, "
            f"d={D}, dot top-{K}, interleaved in one run (batch threads: {int8_scan.THREADS})",
            [
                "rows",
                "float32 1 query",
                "int8 1 query",
                "int8/float32 (<=0.6)",
                f"int8 {NQ} queries",
                "batch per-query gain (>=5)",
                "resident, tracemalloc (<=0.35x)",
                "RssAnon delta",
                "recall@10 single / batch (=1)",
            ],
            rows,
        )
    )
    print(
        table(
            "Where compression starts to pay (cosine, one query, 1 BLAS thread)",
            ["rows", "float32", "int8", "int8/float32"],
            small,
        )
    )
    print(
        table(
            "A euclidean batch's values (recon_sq - 2 alpha dot): float64 vs float32",
            ["rows", "queries", "float64", "float32", "float32/float64", "same rows"],
            euclid,
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--compressed"]:
        compressed_tables(sys.argv[2])
    else:
        main()
