"""Run by ``test_cpu_paths`` in a process that sees another CPU: select the integer
engines as the app does, search an adversarial set with every metric, single and
batched, and print one JSON line: the flags seen, the engines chosen, the log, and
whether every answer was the float64 brute-force one."""

from __future__ import annotations

import io
import json
import logging

import numpy as np

from benchmarks.cpu_paths import flags_seen
from shared.search import int8_scan, quantized
from tests.search.reference import METRICS, reference
from tests.search.saturating import saturating_set


def main() -> None:
    log = io.StringIO()
    logging.basicConfig(level=logging.INFO, stream=log, format="%(message)s")
    chosen = {use: [e.name for e in int8_scan.engines(use).engines] for use in ("one", "batch")}
    m, queries = saturating_set(np.random.default_rng(7))
    qr = quantized.quantize(m)
    wrong = 0
    for metric in METRICS:
        want = [reference(m, q, 10, metric).tolist() for q in queries]
        batch = quantized.search_batch(qr, queries, 10, metric)
        wrong += sum(r.indices.tolist() != w for r, w in zip(batch, want, strict=True))
        for q, w in zip(queries, want, strict=True):
            wrong += quantized.search(qr, q, 10, metric).indices.tolist() != w
    print(
        json.dumps(
            {"flags": flags_seen(), "engines": chosen, "log": log.getvalue(), "wrong": wrong}
        )
    )


if __name__ == "__main__":
    main()
