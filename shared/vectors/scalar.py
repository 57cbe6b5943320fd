"""The SQL scalar logic: the vector functions SQL calls (``sql_functions``), in pure Python.

No numpy on purpose: this is the reference ("scalar twin") the SIMD kernels are tested
against, and the code the embedded database calls. Vectors come and go in the SQL storage
format, little-endian float32 bytes (``VARBINARY(MAX)``); sums run in Python floats
(double), so a long vector loses no precision to float32 accumulation. ``None`` (SQL NULL)
in any argument gives ``None`` out.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable

from .errors import DimensionMismatchError, VectorFormatError

Blob = bytes | bytearray | memoryview

#: Weiszfeld stops when a step moves the estimate by at most this fraction of
#: (|estimate| + mean distance to the points), or after GEOMETRIC_MEDIAN_MAX_ITER steps.
GEOMETRIC_MEDIAN_TOLERANCE = 1e-7
GEOMETRIC_MEDIAN_MAX_ITER = 300
#: A point closer to the estimate than this fraction of the mean distance coincides with it.
GEOMETRIC_MEDIAN_COINCIDENT = 1e-12

_SWAP = sys.byteorder == "big"


def to_bytes(values: Iterable[float]) -> bytes:
    """Floats to the storage format (float32, little-endian)."""
    arr = array("f", values)
    if _SWAP:
        arr.byteswap()
    return arr.tobytes()


def from_bytes(data: Blob | None, field: str = "v") -> list[float] | None:
    """The storage format to Python floats; a bad length raises ``VectorFormatError``."""
    if data is None:
        return None
    if not isinstance(data, bytes | bytearray | memoryview):
        raise VectorFormatError(field, f"expected float32 bytes, got {type(data).__name__}")
    raw = bytes(data) if isinstance(data, memoryview) else data
    if len(raw) % 4:
        raise VectorFormatError(
            field, f"byte length {len(raw)} is not a multiple of 4 (float32 values)"
        )
    arr = array("f")
    arr.frombytes(raw)
    if _SWAP:
        arr.byteswap()
    return arr.tolist()


def _pair(a: Blob, b: Blob) -> tuple[list[float], list[float]]:
    x = from_bytes(a, "a")
    y = from_bytes(b, "b")
    assert x is not None and y is not None
    if len(x) != len(y):
        raise DimensionMismatchError.between("b", len(y), "a", len(x))
    return x, y


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VectorFormatError(field, f"expected a number, got {type(value).__name__}")
    return float(value)


def dot_product(a: Blob | None, b: Blob | None) -> float | None:
    """Sum of a[i]*b[i]."""
    if a is None or b is None:
        return None
    x, y = _pair(a, b)
    total = 0.0
    for p, q in zip(x, y, strict=True):
        total += p * q
    return total


def cosine_similarity(a: Blob | None, b: Blob | None) -> float | None:
    """a.b / (|a| |b|); 0.0 when either norm is 0 (a value SQL can compare, never NaN)."""
    if a is None or b is None:
        return None
    x, y = _pair(a, b)
    ab = aa = bb = 0.0
    for p, q in zip(x, y, strict=True):
        ab += p * q
        aa += p * p
        bb += q * q
    if aa == 0.0 or bb == 0.0:
        return 0.0
    return ab / (math.sqrt(aa) * math.sqrt(bb))


def euclidean_distance(a: Blob | None, b: Blob | None) -> float | None:
    """L2 distance |a - b|."""
    if a is None or b is None:
        return None
    x, y = _pair(a, b)
    total = 0.0
    for p, q in zip(x, y, strict=True):
        diff = p - q
        total += diff * diff
    return math.sqrt(total)


def add(a: Blob | None, b: Blob | None) -> bytes | None:
    """Component-wise a + b."""
    if a is None or b is None:
        return None
    x, y = _pair(a, b)
    return to_bytes([p + q for p, q in zip(x, y, strict=True)])


def subtract(a: Blob | None, b: Blob | None) -> bytes | None:
    """Component-wise a - b."""
    if a is None or b is None:
        return None
    x, y = _pair(a, b)
    return to_bytes([p - q for p, q in zip(x, y, strict=True)])


def scale(v: Blob | None, s: float | None) -> bytes | None:
    """Every component times s."""
    if v is None or s is None:
        return None
    factor = _number(s, "s")
    x = from_bytes(v, "v")
    assert x is not None
    return to_bytes([p * factor for p in x])


def _norm(x: list[float]) -> float:
    total = 0.0
    for p in x:
        total += p * p
    return math.sqrt(total)


def norm(v: Blob | None) -> float | None:
    """L2 norm |v|."""
    x = from_bytes(v, "v")
    return None if x is None else _norm(x)


def normalize(v: Blob | None) -> bytes | None:
    """v / |v|; the zero vector comes back unchanged (no NaN)."""
    x = from_bytes(v, "v")
    if x is None:
        return None
    n = _norm(x)
    if n == 0.0:
        return to_bytes(x)
    return to_bytes([p / n for p in x])


def lerp(a: Blob | None, b: Blob | None, t: float | None) -> bytes | None:
    """a + t (b - a): t=0 gives a, t=1 gives b; t outside [0, 1] extrapolates."""
    if a is None or b is None or t is None:
        return None
    weight = _number(t, "t")
    x, y = _pair(a, b)
    return to_bytes([p + weight * (q - p) for p, q in zip(x, y, strict=True)])


def softmax(v: Blob | None) -> bytes | None:
    """exp(v - max v) / sum: subtracting the max keeps exp from overflowing."""
    x = from_bytes(v, "v")
    if x is None:
        return None
    if not x:
        return b""
    top = max(x)
    exps = [math.exp(p - top) for p in x]
    total = 0.0
    for e in exps:
        total += e
    return to_bytes([e / total for e in exps])


def argmax(v: Blob | None) -> int | None:
    """0-based index of the first largest component; None for NULL or the empty vector."""
    x = from_bytes(v, "v")
    if not x:
        return None
    best_i, best = 0, x[0]
    for i in range(1, len(x)):
        if x[i] > best:
            best_i, best = i, x[i]
    return best_i


class _Aggregate:
    """Shared step() plumbing: NULL rows are skipped, every row must have the first's dim."""

    def __init__(self) -> None:
        self.count = 0
        self.dim = -1

    def _row(self, v: Blob | None) -> list[float] | None:
        x = from_bytes(v, "v")
        if x is None:
            return None
        if self.dim < 0:
            self.dim = len(x)
        elif len(x) != self.dim:
            raise DimensionMismatchError(
                "v",
                f"row {self.count + 1} has dimension {len(x)}, "
                f"earlier rows have dimension {self.dim}",
            )
        self.count += 1
        return x


class Centroid(_Aggregate):
    """Component-wise mean of the rows (sqlite3 aggregate protocol: step/finalize)."""

    def __init__(self) -> None:
        super().__init__()
        self.sums: list[float] = []

    def step(self, v: Blob | None) -> None:
        x = self._row(v)
        if x is None:
            return
        if not self.sums:
            self.sums = [0.0] * len(x)
        sums = self.sums
        for i, p in enumerate(x):
            sums[i] += p

    def finalize(self) -> bytes | None:
        if self.count == 0:
            return None
        return to_bytes([s / self.count for s in self.sums])


class MeanVariance(_Aggregate):
    """Per-component mean and population variance (Welford's one-pass update, stable)."""

    def __init__(self) -> None:
        super().__init__()
        self.mean: list[float] = []
        self.m2: list[float] = []

    def step(self, v: Blob | None) -> None:
        x = self._row(v)
        if x is None:
            return
        if not self.mean:
            self.mean = [0.0] * len(x)
            self.m2 = [0.0] * len(x)
        mean, m2, n = self.mean, self.m2, self.count
        for i, p in enumerate(x):
            delta = p - mean[i]
            mean[i] += delta / n
            m2[i] += delta * (p - mean[i])

    def finalize(self) -> dict[str, object] | None:
        """``{"count", "mean", "variance"}`` in doubles; None when no row was seen."""
        if self.count == 0:
            return None
        return {
            "count": self.count,
            "mean": list(self.mean),
            "variance": [s / self.count for s in self.m2],
        }


def weiszfeld_step(points: list[list[float]], y: list[float]) -> tuple[list[float], float]:
    """One Weiszfeld step with the Vardi-Zhang rule for points that coincide with y.

    Returns the new estimate and the mean distance of the points to y (the scale the
    stopping rule uses). Plain Weiszfeld divides by zero when y lands on a data point;
    Vardi-Zhang instead weighs the pull of the other points against the coincident mass.
    """
    dim = len(y)
    dists = []
    for x in points:
        total = 0.0
        for p, q in zip(x, y, strict=True):
            diff = p - q
            total += diff * diff
        dists.append(math.sqrt(total))
    mean_d = sum(dists) / len(dists)
    if mean_d == 0.0:
        return list(y), 0.0
    eps = GEOMETRIC_MEDIAN_COINCIDENT * mean_d
    num = [0.0] * dim
    wsum = 0.0
    coincident = 0
    for x, d in zip(points, dists, strict=True):
        if d <= eps:
            coincident += 1
            continue
        w = 1.0 / d
        wsum += w
        for i, p in enumerate(x):
            num[i] += w * p
    if wsum == 0.0:
        return list(y), mean_d
    t = [s / wsum for s in num]
    if coincident == 0:
        return t, mean_d
    # R = sum w_i (x_i - y) = wsum * (T - y); gamma = min(1, coincident / |R|).
    r = math.sqrt(sum((wsum * (ti - yi)) ** 2 for ti, yi in zip(t, y, strict=True)))
    if r == 0.0:
        return list(y), mean_d
    gamma = min(1.0, coincident / r)
    return [(1.0 - gamma) * ti + gamma * yi for ti, yi in zip(t, y, strict=True)], mean_d


def geometric_median_of(points: list[list[float]]) -> list[float]:
    """Weiszfeld from the centroid until the step is below the stated tolerance."""
    n = len(points)
    y = [sum(col) / n for col in zip(*points, strict=True)]
    for _ in range(GEOMETRIC_MEDIAN_MAX_ITER):
        new, mean_d = weiszfeld_step(points, y)
        step = math.sqrt(sum((a - b) ** 2 for a, b in zip(new, y, strict=True)))
        y = new
        if step <= GEOMETRIC_MEDIAN_TOLERANCE * (math.sqrt(sum(p * p for p in y)) + mean_d):
            break
    return y


class GeometricMedian(_Aggregate):
    """The point minimising the sum of L2 distances to the rows (robust centre)."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[list[float]] = []

    def step(self, v: Blob | None) -> None:
        x = self._row(v)
        if x is not None:
            self.points.append(x)

    def finalize(self) -> bytes | None:
        if not self.points:
            return None
        return to_bytes(geometric_median_of(self.points))
