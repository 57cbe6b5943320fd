"""Concurrent inference calls of one model version, run as one call of the model.

A model is batched only when its declared shapes make its first dimension the batch
(``LoadedSession.batch_dimension``). Calls join a batch only with calls that feed the
same inputs with the same datatypes and the same non-batch dimensions, and ask for the
same outputs: rows are stacked, never padded, so every row the model sees is a caller's
own. Each caller gets its own rows of every output back.

A batched run whose outputs do not have one row per input row shows the model is not
row-wise after all: its calls are run again one by one (each gets the unbatched
answer) and the version is not batched again in this process, which the log says once.
A model whose rows do affect each other, with row-shaped outputs, cannot be told apart
this way: its registration turns batching off (``batch_max_size=1``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.batching import Batchers, BatchLimits
from shared.errors import HartonomousError
from shared.inference.sessions import LoadedSession

log = logging.getLogger(__name__)


class NotRowWiseError(HartonomousError):
    """A batched run's outputs were not one row per input row (never reaches a caller:
    the batch is run again call by call)."""

    code = "not_row_wise"


@dataclass(frozen=True)
class _Call:
    version_id: str
    label: str  # "<name> version <n>", for the log
    loaded: LoadedSession
    names: Sequence[str]
    feeds: Mapping[str, np.ndarray]


class DynamicBatching:
    """Runs each call alone, or with concurrent calls it can share one run with."""

    def __init__(self, limits: BatchLimits) -> None:
        self.limits = limits
        self.batchers: Batchers[_Call, list[Any]] = Batchers("inference", self._run_batch)
        self._not_row_wise: set[str] = set()
        self._lock = threading.Lock()

    def run(
        self,
        version_id: str,
        label: str,
        options: Mapping[str, Any] | None,
        loaded: LoadedSession,
        names: Sequence[str],
        feeds: Mapping[str, np.ndarray],
        rows: int,
    ) -> list[Any]:
        """``loaded.run(names, feeds)``'s outputs, from a run shared with other callers
        when that cannot change them; ``options`` are the version's registration options
        (its own ``batch_max_size``/``batch_max_delay_ms``)."""
        limits = self.limits.for_model(options)
        if (
            not limits.enabled
            or rows >= limits.max_size
            or not loaded.batch_dimension
            or version_id in self._not_row_wise
            or not _rows_agree(feeds, rows)
        ):
            return loaded.run(names, feeds)
        # Feeds in request order: calls naming their inputs in another order only form
        # another key, which costs batching, never correctness.
        key = (
            version_id,
            tuple(names),
            tuple([(n, a.dtype, a.shape[1:]) for n, a in feeds.items()]),
        )
        call = _Call(version_id, label, loaded, names, feeds)
        return self.batchers.get(limits).submit(key, call, rows)

    def _run_batch(self, key: Hashable, calls: Sequence[_Call]) -> list[list[Any]]:
        first = calls[0]
        if len(calls) == 1:  # alone: exactly the unbatched call
            return [first.loaded.run(first.names, first.feeds)]
        stacked = {name: np.concatenate([c.feeds[name] for c in calls]) for name in first.feeds}
        values = first.loaded.run(first.names, stacked)
        total = len(next(iter(stacked.values())))
        if not all(isinstance(v, np.ndarray) and v.ndim and len(v) == total for v in values):
            with self._lock:
                new = first.version_id not in self._not_row_wise
                self._not_row_wise.add(first.version_id)
            if new:
                log.warning(
                    "model %s: a batched run's outputs are not one row per input row; "
                    "its calls run one at a time from now on",
                    first.label,
                )
            raise NotRowWiseError("the outputs are not one row per input row")
        bounds = np.cumsum([0, *(len(next(iter(c.feeds.values()))) for c in calls)])
        return [[v[a:b] for v in values] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _rows_agree(feeds: Mapping[str, np.ndarray], rows: int) -> bool:
    """Every input has ``rows`` (at least one) as its first dimension."""
    return rows >= 1 and all(a.ndim and a.shape[0] == rows for a in feeds.values())
