"""The answers the search engines must give: a float64 brute force, ties by row index."""

from __future__ import annotations

import numpy as np

METRICS = ["cosine", "euclidean", "dot"]


def reference(m: np.ndarray, q: np.ndarray, k: int, metric: str) -> np.ndarray:
    """float64 brute force, ties by row index."""
    return np.lexsort((np.arange(len(m)), reference_keys(m, q, metric)))[:k]


def reference_keys(m: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """float64 sort keys, smaller is better."""
    x, y = m.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        denom = np.linalg.norm(x, axis=1) * np.linalg.norm(y)
        return -np.divide(x @ y, denom, out=np.zeros(len(x)), where=denom > 0)
    if metric == "dot":
        return -(x @ y)
    return np.linalg.norm(x - y, axis=1)
