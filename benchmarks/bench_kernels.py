"""SIMD kernels vs their scalar twin (pure Python over float32 bytes), per op and dimension.

Single pair: one call each. One-to-10k: the kernel's batch form over 10,000 rows against
the scalar function called per row; the scalar side runs on a sample of rows and is scaled
to 10,000 (it is linear in rows). Kernel and scalar are sampled in turn, round by round.
The scalar side takes the SQL storage format (bytes), as it does in SQL; the kernel takes
float32 arrays, as the API hands them over.
Goals: >= 30x single pair, >= 300x one-to-10k.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shared.vectors import kernels, scalar
from shared.vectors.pool import BufferPool

from .timing import blas_info, fmt_time, interleaved, table

DIMS = (384, 768, 1536)
ROWS = 10_000
SAMPLE = 200
SINGLE_GOAL, MANY_GOAL = 30.0, 300.0


def _ops(
    a: np.ndarray, b: np.ndarray, m: np.ndarray, m2: np.ndarray, pool: BufferPool
) -> list[tuple[str, Callable[[], object], Callable[[], object], Callable[[], object], object]]:
    """(name, kernel one-to-one, kernel one-to-10k, scalar per row(i), scalar single)."""
    ab, bb = a.astype("<f4").tobytes(), b.astype("<f4").tobytes()
    rows = [r.astype("<f4").tobytes() for r in m[:SAMPLE]]
    rows2 = [r.astype("<f4").tobytes() for r in m2[:SAMPLE]]
    n = m.shape[0]
    vec_out = np.empty(n, np.float32)
    mat_out = np.empty_like(m)
    inv = kernels.inverse_norms(m)
    sq = kernels.squared_norms(m)
    return [
        (
            "dot",
            lambda: kernels.dot(a, b),
            lambda: kernels.dot_many(a, m, out=vec_out),
            lambda: [scalar.dot_product(ab, r) for r in rows],
            lambda: scalar.dot_product(ab, bb),
        ),
        (
            "cosine",
            lambda: kernels.cosine(a, b),
            lambda: kernels.cosine_many(a, m, m_inv_norms=inv, out=vec_out),
            lambda: [scalar.cosine_similarity(ab, r) for r in rows],
            lambda: scalar.cosine_similarity(ab, bb),
        ),
        (
            "euclidean",
            lambda: kernels.euclidean(a, b),
            lambda: kernels.euclidean_many(a, m, m_sq_norms=sq, out=vec_out, pool=pool),
            lambda: [scalar.euclidean_distance(ab, r) for r in rows],
            lambda: scalar.euclidean_distance(ab, bb),
        ),
        (
            "add",
            lambda: kernels.add(a, b),
            lambda: kernels.add(m, a, out=mat_out),
            lambda: [scalar.add(r, ab) for r in rows],
            lambda: scalar.add(ab, bb),
        ),
        (
            "subtract",
            lambda: kernels.subtract(a, b),
            lambda: kernels.subtract(m, a, out=mat_out),
            lambda: [scalar.subtract(r, ab) for r in rows],
            lambda: scalar.subtract(ab, bb),
        ),
        (
            "scale",
            lambda: kernels.scale(a, 1.5),
            lambda: kernels.scale(m, 1.5, out=mat_out),
            lambda: [scalar.scale(r, 1.5) for r in rows],
            lambda: scalar.scale(ab, 1.5),
        ),
        (
            "norm",
            lambda: kernels.norm(a),
            lambda: kernels.norm(m, out=vec_out),
            lambda: [scalar.norm(r) for r in rows],
            lambda: scalar.norm(ab),
        ),
        (
            "normalize",
            lambda: kernels.normalize(a),
            lambda: kernels.normalize(m, out=mat_out),
            lambda: [scalar.normalize(r) for r in rows],
            lambda: scalar.normalize(ab),
        ),
        (
            "lerp",
            lambda: kernels.lerp(a, b, 0.3),
            lambda: kernels.lerp(m, m2, 0.3, out=mat_out),
            lambda: [scalar.lerp(r, s, 0.3) for r, s in zip(rows, rows2, strict=True)],
            lambda: scalar.lerp(ab, bb, 0.3),
        ),
        (
            "softmax",
            lambda: kernels.softmax(a),
            lambda: kernels.softmax(m, out=mat_out),
            lambda: [scalar.softmax(r) for r in rows],
            lambda: scalar.softmax(ab),
        ),
        (
            "argmax",
            lambda: kernels.argmax(a),
            lambda: kernels.argmax(m),
            lambda: [scalar.argmax(r) for r in rows],
            lambda: scalar.argmax(ab),
        ),
    ]


def main() -> None:
    print(blas_info())
    rng = np.random.default_rng(7)
    pool = BufferPool()
    results = []
    for d in DIMS:
        a, b = (rng.standard_normal(d, dtype=np.float32) for _ in range(2))
        m = rng.standard_normal((ROWS, d), dtype=np.float32)
        m2 = rng.standard_normal((ROWS, d), dtype=np.float32)
        for name, k_one, k_many, s_rows, s_one in _ops(a, b, m, m2, pool):
            ones = interleaved({"k": k_one, "s": s_one}, rounds=5, min_time=0.02)
            many = interleaved({"k": k_many, "s": s_rows}, rounds=3, min_time=0.05)
            t_k1, t_s1 = ones["k"], ones["s"]
            t_km, t_sm = many["k"], many["s"] * ROWS / SAMPLE
            results.append((name, d, t_s1, t_k1, t_sm, t_km))
    rows = []
    for name, d, t_s1, t_k1, t_sm, t_km in results:
        r1, rm = t_s1 / t_k1, t_sm / t_km
        rows.append(
            [
                name,
                d,
                fmt_time(t_s1),
                fmt_time(t_k1),
                f"{r1:.0f}x",
                "met" if r1 >= SINGLE_GOAL else "MISSED",
                fmt_time(t_sm),
                fmt_time(t_km),
                f"{rm:.0f}x",
                "met" if rm >= MANY_GOAL else "MISSED",
            ]
        )
    print(
        table(
            f"Kernel vs scalar twin (single pair goal >= {SINGLE_GOAL:.0f}x; one-to-{ROWS} goal"
            f" >= {MANY_GOAL:.0f}x; scalar one-to-{ROWS} timed on {SAMPLE} rows, scaled"
            f" x{ROWS // SAMPLE})",
            [
                "op",
                "d",
                "scalar 1:1",
                "kernel 1:1",
                "ratio",
                "goal",
                f"scalar 1:{ROWS}",
                f"kernel 1:{ROWS}",
                "ratio",
                "goal",
            ],
            rows,
        )
    )
    singles = [t_s1 / t_k1 for _, _, t_s1, t_k1, _, _ in results]
    manys = [t_sm / t_km for _, _, _, _, t_sm, t_km in results]
    print(
        f"single pair: min {min(singles):.0f}x, median {np.median(singles):.0f}x; "
        f"one-to-{ROWS}: min {min(manys):.0f}x, median {np.median(manys):.0f}x"
    )


if __name__ == "__main__":
    main()
