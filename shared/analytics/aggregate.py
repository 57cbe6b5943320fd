"""Aggregations over event records, vectorised per group (model, time bucket, job kind).

Percentiles use the nearest-rank method: the p-th percentile of n values is the value at
1-based rank ceil(p * n / 100) (at least 1) in ascending order, always an observed value,
computed in integers so a plain SQL query can reproduce it exactly. Confidence histograms
have ten bins of width 0.1 over [0, 1]: bin floor(10 * c), with 1.0 (and anything above)
in the last bin and anything below 0 in the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from shared.analytics.records import FAILED

PERCENTILES: tuple[int, ...] = (50, 95, 99)
HISTOGRAM_BINS = 10
DAY_MS = 86_400_000

Bucket = Literal["day", "week", "month"]


def nearest_rank(n: int, p: int) -> int:
    """1-based rank of the `p`-th percentile (integer percent) of `n` values."""
    return max(1, (p * n + 99) // 100)


@dataclass(frozen=True)
class Groups:
    """Events sorted by group once, reused by every per-group figure."""

    order: np.ndarray | None  # event indices, grouped; None when already grouped
    counts: np.ndarray  # events per group
    starts: np.ndarray  # offset of each group in the grouped order

    @classmethod
    def of(cls, codes: np.ndarray, n_groups: int) -> Groups:
        """The reader returns inference records grouped by model: then no sort and no
        gather are needed (a cheap check), otherwise one stable sort by code."""
        counts = np.bincount(codes, minlength=n_groups).astype(np.int64)
        starts = np.cumsum(counts) - counts
        if len(codes) < 2 or bool(np.all(codes[1:] >= codes[:-1])):
            return cls(None, counts, starts)
        # A stable sort of 16-bit keys is a radix sort in numpy: O(n).
        keys = codes.astype(np.int16) if n_groups <= np.iinfo(np.int16).max else codes
        return cls(np.argsort(keys, kind="stable"), counts, starts)

    def grouped(self, values: np.ndarray) -> np.ndarray:
        return values if self.order is None else values[self.order]

    def percentiles(self, values: np.ndarray, percentiles: tuple[int, ...]) -> np.ndarray:
        """[group, percentile] nearest-rank values; NaN for an empty group. Selection
        (np.partition) per group: O(n), no full sort."""
        out = np.full((len(self.counts), len(percentiles)), np.nan)
        grouped = self.grouped(values)
        for g in np.flatnonzero(self.counts):
            start, n = int(self.starts[g]), int(self.counts[g])
            ks = [nearest_rank(n, p) - 1 for p in percentiles]
            out[g] = np.partition(grouped[start : start + n], ks)[ks]
        return out

    def means(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-group count and mean of the non-NaN `values` (mean NaN where none)."""
        keep = ~np.isnan(values)
        count = self.sums(keep.astype(np.int64))
        total = self.sums(np.where(keep, values, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return count, np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-group sums: one pass over contiguous groups (np.add.reduceat)."""
        out = np.zeros(len(self.counts), dtype=values.dtype)
        used = np.flatnonzero(self.counts)
        if len(used):
            out[used] = np.add.reduceat(self.grouped(values), self.starts[used])
        return out

    def extremes(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-group min and max of int64 `values`; -1 for an empty group."""
        lo = np.full(len(self.counts), -1, dtype=np.int64)
        hi = lo.copy()
        used = np.flatnonzero(self.counts)
        if len(used):
            grouped = self.grouped(values)
            lo[used] = np.minimum.reduceat(grouped, self.starts[used])
            hi[used] = np.maximum.reduceat(grouped, self.starts[used])
        return lo, hi


def histogram_bin(confidence: np.ndarray) -> np.ndarray:
    """The histogram bin (0..9) of each confidence; see the module docstring."""
    return np.clip(np.floor(confidence * HISTOGRAM_BINS), 0, HISTOGRAM_BINS - 1).astype(np.int64)


@dataclass(frozen=True)
class InferenceStats:
    """Per-group inference figures; arrays indexed by group code."""

    count: np.ndarray
    failures: np.ndarray
    rows: np.ndarray
    latency_mean: np.ndarray
    latency: np.ndarray  # [group, PERCENTILES]
    confidence_count: np.ndarray
    confidence_mean: np.ndarray
    first_ms: np.ndarray
    last_ms: np.ndarray
    histogram: np.ndarray | None  # [group, HISTOGRAM_BINS] when asked


def inference_stats(
    events: np.ndarray, codes: np.ndarray, n_groups: int, *, histogram: bool = False
) -> InferenceStats:
    """Counts, failures, latency mean and percentiles, confidence mean (and histogram)
    of inference records grouped by `codes` (0..n_groups-1, one per event)."""
    codes = codes.astype(np.intp, copy=False)
    groups = Groups.of(codes, n_groups)
    latency = events["latency_ms"]
    failed = events["outcome"] == FAILED
    _, latency_mean = groups.means(latency)
    confidence = events["confidence"]
    conf_count, conf_mean = groups.means(confidence)
    first, last = groups.extremes(events["ts_ms"])
    hist = None
    if histogram:
        keep = ~np.isnan(confidence)
        flat = codes[keep] * HISTOGRAM_BINS + histogram_bin(confidence[keep])
        hist = np.bincount(flat, minlength=n_groups * HISTOGRAM_BINS).reshape(
            n_groups, HISTOGRAM_BINS
        )
    return InferenceStats(
        count=groups.counts,
        failures=np.bincount(codes[failed], minlength=n_groups).astype(np.int64),
        rows=groups.sums(events["rows"].astype(np.int64)),
        latency_mean=latency_mean,
        latency=groups.percentiles(latency, PERCENTILES),
        confidence_count=conf_count,
        confidence_mean=conf_mean,
        first_ms=first,
        last_ms=last,
        histogram=hist,
    )


def bucket_start(ts_ms: np.ndarray, unit: Bucket) -> np.ndarray:
    """The UTC start (epoch ms) of the day, ISO week (Monday) or month of each time."""
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    if unit == "day":
        return ts_ms - ts_ms % DAY_MS
    if unit == "week":
        days = ts_ms // DAY_MS
        return (days - (days + 3) % 7) * DAY_MS  # 1970-01-01 was a Thursday
    if unit == "month":
        months = ts_ms.astype("datetime64[ms]").astype("datetime64[M]")
        return months.astype("datetime64[ms]").astype(np.int64)
    raise ValueError(f"bucket must be day, week or month, got {unit!r}")


def bucket_range(first_ms: int, last_ms: int, unit: Bucket) -> np.ndarray:
    """Every bucket start from the one holding `first_ms` to the one holding `last_ms`."""
    first, last = (int(x) for x in bucket_start(np.array([first_ms, last_ms]), unit))
    if unit == "month":
        months = np.arange(
            np.datetime64(first, "ms").astype("datetime64[M]"),
            np.datetime64(last, "ms").astype("datetime64[M]") + 1,
        )
        return months.astype("datetime64[ms]").astype(np.int64)
    step = DAY_MS if unit == "day" else 7 * DAY_MS
    return np.arange(first, last + 1, step, dtype=np.int64)
