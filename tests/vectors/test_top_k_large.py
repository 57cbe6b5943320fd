"""top_k on inputs large enough to take the sampled-bound path: same answer as a full sort."""

import numpy as np
import pytest

from shared.vectors import kernels
from shared.vectors.pool import BufferPool


def reference(scores: np.ndarray, k: int, largest: bool) -> np.ndarray:
    key = -scores.astype(np.float64) if largest else scores.astype(np.float64)
    return np.lexsort((np.arange(scores.size), key))[:k]


N = kernels.TOP_K_SAMPLE_FROM * 3


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize(
    "make",
    [
        lambda rng: rng.standard_normal(N).astype(np.float32),
        lambda rng: np.sort(rng.standard_normal(N)).astype(np.float32),  # sample sees few winners
        lambda rng: np.round(rng.standard_normal(N), 1).astype(np.float32),  # heavy ties
        lambda rng: np.zeros(N, np.float32),  # all tied: lowest indices win
    ],
)
@pytest.mark.parametrize("k", [1, 10, 200])
def test_sampled_path_matches_a_full_sort(make, largest: bool, k: int) -> None:
    scores = make(np.random.default_rng(k))
    idx, vals = kernels.top_k(scores, k, largest, pool=BufferPool())
    want = reference(scores, k, largest)
    assert idx.tolist() == want.tolist()
    assert np.array_equal(vals, scores[want])


def test_the_inputs_take_the_sampled_path() -> None:
    assert N >= kernels.TOP_K_SAMPLE_FROM and N >= 200 * 256
