"""Compact, immutable event records: one numpy structured array per event kind.

Each event is one fixed-size record in a contiguous array (31 bytes per inference, 23 per
job) instead of a Python object with a dict, boxed floats and strings. Categorical
strings (model name, outcome, job kind and status) are small integer codes into a lookup
tuple; timestamps are int64 epoch ms (UTC).
The arrays are read-only once built, so a table can be shared without copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.jobs.kinds import JobStatus

#: One inference call (an `inference_log` row). The field order is the SQL select order,
#: so driver rows go straight into records (shared.analytics.reader).
INFERENCE_DTYPE = np.dtype(
    [
        ("ts_ms", "<i8"),  # created_at, epoch milliseconds UTC
        ("latency_ms", "<f8"),
        ("confidence", "<f8"),  # NaN when the model gave none
        ("rows", "<i4"),
        ("model", "<i2"),  # code into InferenceEvents.models
        ("outcome", "i1"),  # code into OUTCOMES
    ]
)

#: One job (a `jobs` row).
JOB_DTYPE = np.dtype(
    [
        ("ts_ms", "<i8"),  # created_at, epoch milliseconds UTC
        ("duration_ms", "<f8"),  # finished_at - started_at; NaN while unfinished
        ("attempts", "<i4"),
        ("kind", "<i2"),  # code into JobEvents.kinds
        ("status", "i1"),  # code into JOB_STATUSES
    ]
)

#: Inference outcomes as written by shared.inference.service; anything else is "other".
OUTCOMES: tuple[str, ...] = ("succeeded", "failed", "other")
FAILED = OUTCOMES.index("failed")

#: Job statuses as declared in shared.jobs.kinds, and a catch-all.
JOB_STATUSES: tuple[str, ...] = (*(s.value for s in JobStatus), "other")
JOB_FAILED = JOB_STATUSES.index(JobStatus.FAILED.value)


def frozen(array: np.ndarray) -> np.ndarray:
    """The same array, read-only: records are values, never updated in place."""
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class InferenceEvents:
    """Inference records and the lookup table their `model` codes index."""

    events: np.ndarray  # INFERENCE_DTYPE, read-only
    models: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.events)


@dataclass(frozen=True)
class JobEvents:
    """Job records and the lookup table their `kind` codes index."""

    events: np.ndarray  # JOB_DTYPE, read-only
    kinds: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.events)
