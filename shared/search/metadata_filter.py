"""Row metadata and Pinecone's metadata filter language, evaluated over columns in memory.

Metadata is a flat JSON object per row whose values are strings, numbers, booleans or
lists of strings, as Pinecone accepts them (``check_metadata``). A filter
(``parse_filter``) is Pinecone's language: ``$eq $ne $gt $gte $lt $lte $in $nin
$exists`` under a field name, ``$and``/``$or`` over lists of filters, a bare value
meaning ``$eq`` and several keys in one object meaning ``$and``.

Semantics, per row and field (``MetadataFilter.matches`` is the reference):

* numbers compare as float64 whatever their JSON spelling (``1 == 1.0``); booleans are
  not numbers (``true`` does not equal ``1``); strings compare exactly;
* ``$eq``/``$in`` match a list field when the list holds the value (or one of them);
* ``$ne``/``$nin`` are the exact negations of ``$eq``/``$in``: a list matches when it
  holds none of the values, and a row without the field matches. Pinecone's language is
  MongoDB's subset, and this is MongoDB's rule; ``{"f": {"$exists": true}, ...}`` narrows
  to rows that have the field;
* ``$gt $gte $lt $lte`` take a number and match only number values;
* ``$in``/``$nin`` take a list of strings and numbers (empty: ``$in`` matches no row,
  ``$nin`` every row); ``$exists`` takes a boolean;
* ``{}`` matches every row; ``$and``/``$or`` need at least one filter.

``MetadataColumns`` holds a set's metadata column-wise so a filter is a handful of numpy
operations over whole columns (``MetadataFilter.mask``), with no Python work per row.
Per key and per value type present under it: strings as integer codes into the key's
sorted dictionary (int8 up to 127 distinct values), numbers in the narrowest of int16,
int32, float32 and float64 that holds every value exactly, booleans as int8, and list
values as one bitmap per distinct value (``np.packbits``) or, for rare values, sorted
(row, code) pairs, whichever is smaller. Each scalar column is dense (one slot per row,
a sentinel for "absent") or sparse (sorted row numbers and values), whichever is
smaller, so a key held by few rows, or a type seen in few rows of a key, costs little.
``row(i)`` rebuilds a row's metadata: list order is kept (a permutation index per row,
exact lists for rows with repeated values or more than five values), number types too
(``2`` and ``2.0``); key order within a row is the set's first-seen key order.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from shared.errors import InvalidInputError

#: A row's metadata, as compact JSON (UTF-8), at most this many bytes.
METADATA_MAX_BYTES = 8192
#: Integers beyond this magnitude have no exact float64, and numbers are compared and
#: held as float64: such a value would come back changed, so it is refused up front.
METADATA_MAX_INT = 2**53
#: Nesting of ``$and``/``$or`` a filter may use (deeper would only exhaust the stack).
FILTER_MAX_DEPTH = 32
#: Values one ``$in``/``$nin`` may list: a bound on the work and memory one filter asks for.
FILTER_MAX_IN_VALUES = 10_000

_COMPARISONS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
_RANGES = frozenset({"$gt", "$gte", "$lt", "$lte"})
_LOGICAL = frozenset({"$and", "$or"})
_OPERATORS = ", ".join(sorted(_COMPARISONS | _LOGICAL))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _invalid(path: str, reason: str) -> InvalidInputError:
    return InvalidInputError(f"{path}: {reason}", field=path, reason=reason)


def _finite(value: int | float, path: str) -> float:
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _invalid(path, "must be a finite number")
    return number


# ---------------------------------------------------------------------------------------
# Metadata as given


def check_metadata(value: Any, field: str) -> dict[str, Any]:
    """A row's metadata as given: a JSON object whose values are str, int/float (finite),
    bool, or a list of str (as Pinecone accepts them), at most METADATA_MAX_BYTES as
    compact JSON; else InvalidInputError naming `field` (and the key:
    `items[3].metadata.tags`). Returns a copy (lists as lists)."""
    if not isinstance(value, Mapping):
        raise _invalid(field, f"expected a JSON object, got {_type_name(value)}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise _invalid(field, f"keys must be strings, got {_type_name(key)}")
        path = f"{field}.{key}"
        if key.startswith("$"):
            # A filter reads "$..." as an operator, so such a key could never be filtered.
            raise _invalid(path, "metadata keys must not start with '$'")
        if isinstance(item, bool):
            out[key] = item
        elif isinstance(item, str):
            out[key] = str(item)
        elif isinstance(item, int | float):
            _finite(item, path)
            if isinstance(item, int) and abs(item) > METADATA_MAX_INT:
                raise _invalid(
                    path, "integers beyond ±2^53 have no exact float64; send it as a string"
                )
            out[key] = int(item) if isinstance(item, int) else float(item)
        elif isinstance(item, list | tuple):
            for j, element in enumerate(item):
                if not isinstance(element, str):
                    raise _invalid(
                        f"{path}[{j}]",
                        f"lists may hold only strings, got {_type_name(element)}",
                    )
            out[key] = [str(s) for s in item]
        elif item is None:
            raise _invalid(path, "null is not a metadata value; leave the key out instead")
        else:
            raise _invalid(
                path,
                "expected a string, number, boolean or list of strings, "
                f"got {_type_name(item)} (nested objects are not supported)",
            )
    size = len(json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode())
    if size > METADATA_MAX_BYTES:
        raise _invalid(field, f"{size} bytes as compact JSON; at most {METADATA_MAX_BYTES} per row")
    return out


# ---------------------------------------------------------------------------------------
# Columns


def _code_dtype(distinct: int) -> np.dtype:
    for dtype in (np.int8, np.int16, np.int32):
        if distinct <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


class _RowSet:
    """A set of row numbers: a bitmap or the sorted rows, whichever is smaller."""

    __slots__ = ("bits", "n", "rows")

    def __init__(self, n: int, rows: np.ndarray) -> None:
        self.n = n
        self.bits: np.ndarray | None = None
        self.rows: np.ndarray | None = None
        if len(rows) * 4 > (n + 7) // 8:
            m = np.zeros(n, dtype=bool)
            m[rows] = True
            self.bits = np.packbits(m)
        else:
            self.rows = np.asarray(rows, dtype=np.int32)

    def __contains__(self, i: int) -> bool:
        if self.bits is not None:
            return bool((self.bits[i >> 3] >> (7 - (i & 7))) & 1)
        assert self.rows is not None
        j = int(np.searchsorted(self.rows, i))
        return j < len(self.rows) and int(self.rows[j]) == i

    def mask(self) -> np.ndarray:
        if self.bits is not None:
            return np.unpackbits(self.bits, count=self.n).view(bool)
        m = np.zeros(self.n, dtype=bool)
        m[self.rows] = True
        return m

    @property
    def nbytes(self) -> int:
        return int((self.bits if self.bits is not None else self.rows).nbytes)


class _Col:
    """One typed column of a key: dense (a slot per row; ``missing`` marks a row without
    a value of this type) or sparse (sorted row numbers and their values)."""

    __slots__ = ("missing", "n", "rows", "vals")

    def __init__(self, n: int, rows: np.ndarray, vals: np.ndarray, missing: Any) -> None:
        self.n = n
        self.missing = missing
        itemsize = vals.dtype.itemsize
        if len(rows) * (4 + itemsize) < n * itemsize:
            self.rows: np.ndarray | None = np.asarray(rows, dtype=np.int32)
            self.vals = vals
        else:
            self.rows = None
            self.vals = np.full(n, missing, dtype=vals.dtype)
            self.vals[rows] = vals

    @property
    def nbytes(self) -> int:
        return int(self.vals.nbytes + (0 if self.rows is None else self.rows.nbytes))

    def where(self, hit: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Rows whose value passes ``hit`` (which must reject ``missing`` when dense)."""
        if self.rows is None:
            return hit(self.vals)
        out = np.zeros(self.n, dtype=bool)
        out[self.rows[hit(self.vals)]] = True
        return out

    def present(self) -> np.ndarray:
        if self.rows is not None:
            out = np.zeros(self.n, dtype=bool)
            out[self.rows] = True
            return out
        if isinstance(self.missing, float):  # NaN
            return ~np.isnan(self.vals)
        return self.vals != self.missing

    def slot(self, i: int) -> int | None:
        """Index into ``vals`` of row i's value, or None when it has none."""
        if self.rows is None:
            v = self.vals.item(i)
            # v != v: NaN, the float columns' "absent".
            return None if v == self.missing or v != v else i
        j = int(np.searchsorted(self.rows, i))
        return j if j < len(self.rows) and self.rows.item(j) == i else None


def _none(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


def _equal_any(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """values == any of ``wanted`` (sorted, distinct, of values' dtype).

    Integers go by runs of consecutive values, two compares a run: string codes follow
    the sorted dictionary, so "these 15 genres" is often one or two runs, and a range
    compare reads the column once, at memory speed, where a table lookup or np.isin
    costs 5-50x more per row. Many runs of int8 codes take a 256-entry table instead."""
    if values.dtype.kind == "i":
        w = wanted.astype(np.int64)
        breaks = np.flatnonzero(np.diff(w) != 1) + 1
        firsts = w[np.concatenate(([0], breaks))].tolist()
        lasts = w[np.concatenate((breaks, [len(w)])) - 1].tolist()
        if len(firsts) <= 8:
            out = None
            for lo, hi in zip(firsts, lasts, strict=True):
                part = values == lo if lo == hi else (values >= lo) & (values <= hi)
                if out is None:
                    out = part
                else:
                    out |= part
            return out
        if values.dtype == np.int8:
            table = np.zeros(256, dtype=bool)
            table[wanted.view(np.uint8)] = True
            return np.take(table, values.view(np.uint8))
        return np.isin(values, wanted)
    if len(wanted) <= 16:
        out = values == wanted[0]
        for x in wanted[1:]:
            out |= values == x
        return out
    return np.isin(values, wanted)


class _Numbers:
    """A key's number values, in the narrowest dtype that holds all of them exactly.

    Comparisons against a float64 operand are exact in every dtype: the operand is
    rounded to the dtype in the direction that keeps the answer (``v > x`` is
    ``v > floor(x)`` for integers, ``v > down32(x)`` for float32)."""

    __slots__ = ("col", "hi", "int_default", "int_other", "kind", "lo")

    def __init__(self, n: int, rows: np.ndarray, values: np.ndarray, is_int: np.ndarray) -> None:
        integral = bool(np.all(np.floor(values) == values)) and not bool(
            np.any(np.signbit(values) & (values == 0))  # -0.0 has no integer twin
        )
        self.kind = "float64"
        dtype: Any = np.float64
        missing: Any = math.nan
        for candidate in (np.int16, np.int32):
            info = np.iinfo(candidate)
            # The dtype's minimum is the "absent" sentinel, so values stay above it.
            if integral and values.min() > info.min and values.max() <= info.max:
                self.kind, dtype, missing = "int", candidate, int(info.min)
                break
        else:
            with np.errstate(over="ignore"):
                narrow = values.astype(np.float32).astype(np.float64)
            if np.array_equal(narrow, values):
                self.kind, dtype = "float32", np.float32
        if self.kind == "int":
            info = np.iinfo(dtype)
            self.lo, self.hi = int(info.min) + 1, int(info.max)
        else:
            self.lo = self.hi = 0
        self.col = _Col(n, rows, values.astype(dtype), missing)
        # Which rows held a JSON integer: the majority type, and the other type's rows.
        ints = int(np.count_nonzero(is_int))
        self.int_default = ints * 2 >= len(is_int)
        other = rows[is_int != self.int_default]
        self.int_other = _RowSet(n, other) if len(other) else None

    @property
    def nbytes(self) -> int:
        return self.col.nbytes + (0 if self.int_other is None else self.int_other.nbytes)

    def get(self, i: int) -> int | float | None:
        j = self.col.slot(i)
        if j is None:
            return None
        v = self.col.vals.item(j)
        is_int = self.int_default
        if self.int_other is not None and i in self.int_other:
            is_int = not is_int
        return int(v) if is_int else float(v)

    def present(self) -> np.ndarray:
        return self.col.present()

    def compare(self, op: str, x: float) -> np.ndarray:
        n = self.col.n
        if self.kind == "float64":
            t = np.float64(x)
            ops = {"$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less}
            fn = ops.get(op, np.less_equal)
            return self.col.where(lambda v: fn(v, t))
        if self.kind == "float32":
            down, up = _f32_down(x), _f32_up(x)
            if op == "$gt":
                return self.col.where(lambda v: v > down)
            if op == "$gte":
                return self.col.where(lambda v: v >= up)
            if op == "$lt":
                return self.col.where(lambda v: v < up)
            return self.col.where(lambda v: v <= down)
        # Integers: v > x <=> v > floor(x); v >= x <=> v > ceil(x) - 1; and so on.
        if op in ("$gt", "$gte"):
            t = math.floor(x) if op == "$gt" else math.ceil(x) - 1
            if t >= self.hi:
                return _none(n)
            if t < self.lo:
                return self.col.present()
            return self.col.where(lambda v: v > t)
        t = math.ceil(x) if op == "$lt" else math.floor(x) + 1
        if t <= self.lo:
            return _none(n)
        if t > self.hi:
            return self.col.present()
        if self.col.rows is None:
            # The "absent" sentinel is the dtype's minimum, below every threshold here.
            return (self.col.vals < t) & (self.col.vals != self.col.missing)
        return self.col.where(lambda v: v < t)

    def isin(self, xs: Sequence[float]) -> np.ndarray:
        """Rows whose value is one of ``xs`` (sorted, distinct)."""
        if self.kind == "int":
            keep = [int(x) for x in xs if x.is_integer() and self.lo <= x <= self.hi]
        elif self.kind == "float32":
            with np.errstate(over="ignore"):
                keep = [x for x in xs if float(np.float32(x)) == x]
        else:
            keep = list(xs)
        if not keep:
            return _none(self.col.n)
        wanted = np.array(keep, dtype=self.col.vals.dtype)
        return self.col.where(lambda v: _equal_any(v, wanted))


def _f32_down(x: float) -> np.float32:
    """The largest float32 <= x (-inf when none is finite)."""
    with np.errstate(over="ignore"):
        f = np.float32(x)
    return np.nextafter(f, np.float32(-np.inf)) if float(f) > x else f


def _f32_up(x: float) -> np.float32:
    """The smallest float32 >= x (inf when none is finite)."""
    with np.errstate(over="ignore"):
        f = np.float32(x)
    return np.nextafter(f, np.float32(np.inf)) if float(f) < x else f


#: Lists of up to this many distinct values keep their order as a permutation index
#: (5! = 120 fits an int8); longer ones, or ones with repeats, are kept whole.
_PERM_MAX = 5
_PERMS = {m: list(itertools.permutations(range(m))) for m in range(2, _PERM_MAX + 1)}


def _perm_table(m: int) -> np.ndarray:
    """Permutation -> its lexicographic index, keyed by the permutation read in base m."""
    table = np.full(m**m, -1, dtype=np.int16)
    weights = m ** np.arange(m - 1, -1, -1)
    for index, perm in enumerate(_PERMS[m]):
        table[int(np.dot(perm, weights))] = index
    return table


_PERM_TABLES = {m: _perm_table(m) for m in _PERMS}


class _Lists:
    """A key's list-of-strings values: per distinct value, a bitmap of the rows holding
    it, or (for values too rare to be worth n/8 bytes) (row, code) pairs sorted by row;
    plus the rows holding an empty list and what it takes to restore each list's order."""

    __slots__ = (
        "bit_codes",
        "bit_index",
        "bits",
        "empty",
        "n",
        "odd",
        "pair_codes",
        "pair_rows",
        "perm",
    )

    def __init__(
        self,
        n: int,
        rows: list[int],
        lists: list[Sequence[str]],
        code_of: dict[str, int],
        code_dtype: np.dtype,
    ) -> None:
        self.n = n
        distinct = max(len(code_of), 1)
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        row_arr = np.asarray(rows, dtype=np.int64)
        total = int(lengths.sum())
        flat_codes = np.fromiter(
            (code_of[s] for values in lists for s in values), dtype=np.int64, count=total
        )
        flat_rows = np.repeat(row_arr, lengths)
        empty = row_arr[lengths == 0]
        self.empty = _RowSet(n, empty) if len(empty) else None

        # Order: each list of 2..5 distinct values is its sorted codes under one of m!
        # permutations; rows in sorted order (index 0) cost nothing when stored sparse.
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        self.odd: dict[int, list[str]] = {}
        perm_rows: list[np.ndarray] = []
        perm_vals: list[np.ndarray] = []
        for m in np.unique(lengths[lengths >= 2]).tolist():
            sel = np.flatnonzero(lengths == m)
            if m > _PERM_MAX:
                for k in sel.tolist():
                    self.odd[rows[k]] = list(lists[k])
                continue
            codes = flat_codes[offsets[sel][:, None] + np.arange(m)]
            ranked = np.sort(codes, axis=1)
            repeats = np.any(ranked[:, 1:] == ranked[:, :-1], axis=1)
            for k in sel[repeats].tolist():
                self.odd[rows[k]] = list(lists[k])
            order = np.argsort(np.argsort(codes, axis=1, kind="stable"), axis=1)
            index = _PERM_TABLES[m][order @ (m ** np.arange(m - 1, -1, -1))]
            moved = (index != 0) & ~repeats
            perm_rows.append(row_arr[sel[moved]])
            perm_vals.append(index[moved].astype(np.int8))
        if perm_rows and sum(len(r) for r in perm_rows):
            moved_rows = np.concatenate(perm_rows)
            by_row = np.argsort(moved_rows, kind="stable")  # grouped by length so far
            self.perm: _Col | None = _Col(
                n, moved_rows[by_row], np.concatenate(perm_vals)[by_row], 0
            )
        else:
            self.perm = None

        # Membership: distinct (row, code) pairs, sorted by row then code.
        keys = np.unique(flat_rows * distinct + flat_codes)
        pair_rows, pair_codes = keys // distinct, keys % distinct
        counts = np.bincount(pair_codes, minlength=distinct)
        as_bits = np.flatnonzero(counts * (4 + code_dtype.itemsize) > (n + 7) // 8)
        self.bit_index = np.full(distinct, -1, dtype=np.int32)
        self.bit_index[as_bits] = np.arange(len(as_bits), dtype=np.int32)
        self.bit_codes = as_bits.astype(code_dtype)
        self.bits = np.zeros((len(as_bits), (n + 7) // 8), dtype=np.uint8)
        if len(as_bits):
            by_code = np.argsort(pair_codes, kind="stable")
            sorted_codes = pair_codes[by_code]
            starts = np.searchsorted(sorted_codes, as_bits)
            ends = np.searchsorted(sorted_codes, as_bits, side="right")
            m = np.zeros(n, dtype=bool)
            for j, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
                m[:] = False
                m[pair_rows[by_code[s:e]]] = True
                self.bits[j] = np.packbits(m)
        keep = self.bit_index[pair_codes] < 0
        self.pair_rows = pair_rows[keep].astype(np.int32)
        self.pair_codes = pair_codes[keep].astype(code_dtype)

    @property
    def nbytes(self) -> int:
        total = (
            self.bits.nbytes
            + self.bit_codes.nbytes
            + self.bit_index.nbytes
            + self.pair_rows.nbytes
            + self.pair_codes.nbytes
        )
        if self.empty is not None:
            total += self.empty.nbytes
        if self.perm is not None:
            total += self.perm.nbytes
        for values in self.odd.values():
            total += 16 + sys.getsizeof(values) + sum(sys.getsizeof(s) for s in values)
        return int(total)

    def holding(self, codes: Sequence[int]) -> np.ndarray:
        """Rows whose list holds at least one of ``codes``."""
        codes_arr = np.asarray(codes, dtype=np.int64)
        slots = self.bit_index[codes_arr]
        in_bits = slots[slots >= 0]
        if len(in_bits) == 1:
            out = np.unpackbits(self.bits[in_bits[0]], count=self.n).view(bool)
        elif len(in_bits):
            packed = np.bitwise_or.reduce(self.bits[in_bits], axis=0)
            out = np.unpackbits(packed, count=self.n).view(bool)
        else:
            out = _none(self.n)
        rare = codes_arr[slots < 0]
        if len(rare) and len(self.pair_codes):
            if len(rare) == 1:
                hit = self.pair_codes == rare[0]
            else:
                table = np.zeros(len(self.bit_index), dtype=bool)
                table[rare] = True
                hit = table[self.pair_codes]
            out[self.pair_rows[hit]] = True
        return out

    def present(self) -> np.ndarray:
        if len(self.bits):
            out = np.unpackbits(np.bitwise_or.reduce(self.bits, axis=0), count=self.n)
            out = out.view(bool)
        else:
            out = _none(self.n)
        out[self.pair_rows] = True
        if self.empty is not None:
            out |= self.empty.mask()
        return out

    def get(self, i: int, strings: list[str]) -> list[str] | None:
        if i in self.odd:
            return list(self.odd[i])
        codes = self.bit_codes[np.flatnonzero(self.bits[:, i >> 3] & (128 >> (i & 7)))].tolist()
        if len(self.pair_rows):
            lo, hi = np.searchsorted(self.pair_rows, (i, i + 1)).tolist()
            codes += self.pair_codes[lo:hi].tolist()
        if not codes:
            return [] if self.empty is not None and i in self.empty else None
        codes.sort()
        if len(codes) >= 2 and self.perm is not None:
            j = self.perm.slot(i)
            if j is not None:
                order = _PERMS[len(codes)][self.perm.vals.item(j)]
                codes = [codes[p] for p in order]
        return [strings[c] for c in codes]


class _Key:
    """Everything held for one metadata key, per type of value found under it."""

    __slots__ = ("bools", "lists", "numbers", "strings", "texts")

    def __init__(self) -> None:
        self.strings: list[str] = []  # sorted: a string's code is its position
        self.texts: _Col | None = None
        self.numbers: _Numbers | None = None
        self.bools: _Col | None = None
        self.lists: _Lists | None = None

    def code_of(self, value: str) -> int | None:
        j = bisect.bisect_left(self.strings, value)
        return j if j < len(self.strings) and self.strings[j] == value else None

    @property
    def nbytes(self) -> int:
        total = sys.getsizeof(self.strings) + sum(sys.getsizeof(s) for s in self.strings)
        for part in (self.texts, self.numbers, self.bools, self.lists):
            if part is not None:
                total += part.nbytes
        return int(total)

    def get(self, i: int) -> Any:
        if self.texts is not None:
            j = self.texts.slot(i)
            if j is not None:
                return self.strings[self.texts.vals.item(j)]
        if self.numbers is not None:
            v = self.numbers.get(i)
            if v is not None:
                return v
        if self.bools is not None:
            j = self.bools.slot(i)
            if j is not None:
                return bool(self.bools.vals.item(j))
        if self.lists is not None:
            return self.lists.get(i, self.strings)
        return None


class _Gather:
    """A key's values by type, gathered row by row before the columns are built."""

    __slots__ = (
        "b_rows",
        "b_vals",
        "l_rows",
        "l_vals",
        "n_int",
        "n_rows",
        "n_vals",
        "s_rows",
        "s_vals",
    )

    def __init__(self) -> None:
        self.s_rows: list[int] = []
        self.s_vals: list[str] = []
        self.n_rows: list[int] = []
        self.n_vals: list[float] = []
        self.n_int: list[bool] = []
        self.b_rows: list[int] = []
        self.b_vals: list[bool] = []
        self.l_rows: list[int] = []
        self.l_vals: list[Sequence[str]] = []


class MetadataColumns:
    """A set's metadata held column-wise in memory (codes for strings, arrays for numbers,
    bitmaps for list values), built once per loaded set version."""

    def __init__(self, rows: int, keys: dict[str, _Key], empty: _RowSet | None) -> None:
        self.rows = rows
        self._keys = keys
        self._empty = empty  # rows whose metadata is {} (not None)
        self.nbytes = sum(k.nbytes for k in keys.values()) + (0 if empty is None else empty.nbytes)

    @property
    def keys(self) -> tuple[str, ...]:
        """The metadata keys found in the set, in first-seen order."""
        return tuple(self._keys)

    @classmethod
    def build(cls, rows: Sequence[Mapping[str, Any] | None]) -> MetadataColumns:
        n = len(rows)
        gathered: dict[str, _Gather] = {}
        empty: list[int] = []
        for r, metadata in enumerate(rows):
            if metadata is None:
                continue
            if not metadata:
                empty.append(r)
                continue
            for key, value in metadata.items():
                g = gathered.get(key)
                if g is None:
                    g = gathered[key] = _Gather()
                kind = type(value)
                if kind is str:
                    g.s_rows.append(r)
                    g.s_vals.append(value)
                elif kind is bool:
                    g.b_rows.append(r)
                    g.b_vals.append(value)
                elif kind is int or kind is float:
                    g.n_rows.append(r)
                    g.n_vals.append(value)
                    g.n_int.append(kind is int)
                elif kind is list or kind is tuple:
                    g.l_rows.append(r)
                    g.l_vals.append(value)
                else:
                    # Rows reach here through check_metadata; anything else is a bug.
                    raise TypeError(f"rows[{r}].{key}: unsupported metadata value {value!r}")
        keys = {key: _build_key(n, g) for key, g in gathered.items()}
        return cls(n, keys, _RowSet(n, np.asarray(empty, dtype=np.int64)) if empty else None)

    def row(self, i: int) -> dict[str, Any] | None:
        """Row i's metadata back (for include_metadata); None when it has none."""
        if not 0 <= i < self.rows:
            raise IndexError(f"row {i} of {self.rows}")
        out: dict[str, Any] = {}
        for key, column in self._keys.items():
            value = column.get(i)
            if value is not None:
                out[key] = value
        if out:
            return out
        return {} if self._empty is not None and i in self._empty else None

    def _key(self, key: str) -> _Key | None:
        return self._keys.get(key)


def _build_key(n: int, g: _Gather) -> _Key:
    k = _Key()
    words = set(g.s_vals)
    for values in g.l_vals:
        words.update(values)
    k.strings = sorted(words)
    code_of = {s: j for j, s in enumerate(k.strings)}
    dtype = _code_dtype(len(k.strings))
    if g.s_rows:
        codes = np.fromiter((code_of[s] for s in g.s_vals), dtype=dtype, count=len(g.s_vals))
        k.texts = _Col(n, np.asarray(g.s_rows, dtype=np.int64), codes, -1)
    if g.n_rows:
        k.numbers = _Numbers(
            n,
            np.asarray(g.n_rows, dtype=np.int64),
            np.asarray(g.n_vals, dtype=np.float64),
            np.asarray(g.n_int, dtype=bool),
        )
    if g.b_rows:
        k.bools = _Col(
            n, np.asarray(g.b_rows, dtype=np.int64), np.asarray(g.b_vals, dtype=np.int8), -1
        )
    if g.l_rows:
        k.lists = _Lists(n, g.l_rows, g.l_vals, code_of, dtype)
    return k


# ---------------------------------------------------------------------------------------
# Filters


def _number_json(x: float) -> int | float:
    """A number as canonical JSON: integral values as integers, so 1 and 1.0 agree."""
    return int(x) if x.is_integer() and abs(x) <= METADATA_MAX_INT else x


def _scalar_json(value: str | bool | float) -> Any:
    return _number_json(value) if _is_number(value) else value


class _Node:
    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text: str | None = None

    def json(self) -> Any:
        raise NotImplementedError

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def mask(self, columns: MetadataColumns) -> np.ndarray:
        raise NotImplementedError

    def key(self) -> str:
        """The canonical JSON text (cached: ``$and``/``$or`` sort their children by it)."""
        if self.text is None:
            self.text = json.dumps(
                self.json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
        return self.text


class _All(_Node):
    __slots__ = ()

    def json(self) -> Any:
        return {}

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return True

    def mask(self, columns: MetadataColumns) -> np.ndarray:
        return np.ones(columns.rows, dtype=bool)


class _Logical(_Node):
    __slots__ = ("children", "op")

    def __init__(self, op: str, children: list[_Node]) -> None:
        super().__init__()
        self.op = op
        self.children = children

    def json(self) -> Any:
        return {self.op: [c.json() for c in self.children]}

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        if self.op == "$and":
            return all(c.matches(metadata) for c in self.children)
        return any(c.matches(metadata) for c in self.children)

    def mask(self, columns: MetadataColumns) -> np.ndarray:
        out = self.children[0].mask(columns)
        for child in self.children[1:]:
            if self.op == "$and":
                out &= child.mask(columns)
            else:
                out |= child.mask(columns)
        return out


def _combine(op: str, children: list[_Node]) -> _Node:
    """``$and``/``$or`` of children, flattened, deduplicated and in canonical order."""
    flat: dict[str, _Node] = {}
    for child in children:
        parts = child.children if isinstance(child, _Logical) and child.op == op else [child]
        for part in parts:
            if isinstance(part, _All):
                if op == "$or":
                    return part
                continue
            flat.setdefault(part.key(), part)
    if not flat:
        return _All()
    ordered = [flat[k] for k in sorted(flat)]
    return ordered[0] if len(ordered) == 1 else _Logical(op, ordered)


def _equal(value: Any, operand: str | bool | float) -> bool:
    """The reference ``$eq``: one row's value against one operand."""
    if isinstance(operand, bool):
        return isinstance(value, bool) and value == operand
    if isinstance(operand, str):
        if isinstance(value, str):
            return value == operand
        return isinstance(value, list | tuple) and operand in value
    return _is_number(value) and float(value) == operand


class _Leaf(_Node):
    __slots__ = ("field", "op", "operand")

    def __init__(self, field: str, op: str, operand: Any) -> None:
        super().__init__()
        self.field = field
        self.op = op
        self.operand = operand

    def json(self) -> Any:
        operand = self.operand
        if self.op in ("$in", "$nin"):
            strings, numbers = operand
            operand = [*strings, *(_number_json(x) for x in numbers)]
        elif self.op != "$exists":
            operand = _scalar_json(operand)
        return {self.field: {self.op: operand}}

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        present = self.field in metadata
        value = metadata.get(self.field)
        op = self.op
        if op == "$exists":
            return present == self.operand
        if op == "$eq":
            return present and _equal(value, self.operand)
        if op == "$ne":
            return not (present and _equal(value, self.operand))
        if op in ("$in", "$nin"):
            strings, numbers = self.operand
            hit = present and any(_equal(value, x) for x in (*strings, *numbers))
            return hit if op == "$in" else not hit
        if not present or not _is_number(value):
            return False
        v, x = float(value), self.operand
        if op == "$gt":
            return v > x
        if op == "$gte":
            return v >= x
        if op == "$lt":
            return v < x
        return v <= x

    def mask(self, columns: MetadataColumns) -> np.ndarray:
        n = columns.rows
        column = columns._key(self.field)
        op = self.op
        if op == "$exists":
            hit = _present(column, n)
            return hit if self.operand else np.logical_not(hit, out=hit)
        if op in ("$eq", "$ne"):
            hit = _eq_mask(column, self.operand, n)
        elif op in ("$in", "$nin"):
            hit = _in_mask(column, *self.operand, n)
        else:
            if column is None or column.numbers is None:
                return _none(n)
            return column.numbers.compare(op, self.operand)
        if op in ("$ne", "$nin"):
            np.logical_not(hit, out=hit)
        return hit


def _present(column: _Key | None, n: int) -> np.ndarray:
    out = _none(n)
    if column is None:
        return out
    for part in (column.texts, column.numbers, column.bools, column.lists):
        if part is not None:
            out |= part.present()
    return out


def _eq_mask(column: _Key | None, operand: str | bool | float, n: int) -> np.ndarray:
    if column is None:
        return _none(n)
    if isinstance(operand, bool):
        if column.bools is None:
            return _none(n)
        want = int(operand)
        return column.bools.where(lambda v: v == want)
    if isinstance(operand, str):
        code = column.code_of(operand)
        if code is None:
            return _none(n)
        if column.texts is not None:
            out = column.texts.where(lambda v: v == code)
            if column.lists is not None:
                out |= column.lists.holding([code])
            return out
        return column.lists.holding([code]) if column.lists is not None else _none(n)
    if column.numbers is None:
        return _none(n)
    return column.numbers.isin([operand])


def _in_mask(
    column: _Key | None, strings: tuple[str, ...], numbers: tuple[float, ...], n: int
) -> np.ndarray:
    out = _none(n)
    if column is None:
        return out
    codes = [c for c in (column.code_of(s) for s in strings) if c is not None]
    if codes:
        if column.texts is not None:
            # Sorted and distinct: the strings are, and so is the dictionary.
            wanted = np.array(codes, dtype=column.texts.vals.dtype)
            out |= column.texts.where(lambda v: _equal_any(v, wanted))
        if column.lists is not None:
            out |= column.lists.holding(codes)
    if numbers and column.numbers is not None:
        out |= column.numbers.isin(numbers)
    return out


class MetadataFilter:
    """A parsed filter: ``matches`` one row (the reference semantics), ``mask`` a whole
    set's columns at once, ``canonical`` its normal form as JSON text."""

    __slots__ = ("_root",)

    def __init__(self, root: _Node) -> None:
        self._root = root

    def matches(self, metadata: Mapping[str, Any] | None) -> bool:
        return self._root.matches({} if metadata is None else metadata)

    def mask(self, columns: MetadataColumns) -> np.ndarray:
        """bool[rows]: which rows of the set match."""
        return self._root.mask(columns)

    def canonical(self) -> str:
        """Stable JSON text of the parsed filter (keys sorted): every comparison spelled
        ``{"field": {"$op": operand}}``, several of them as ``{"$and": [...]}``, nested
        ``$and``/``$or`` flattened and sorted, ``$in`` lists deduplicated and sorted
        (strings, then numbers), integral numbers as integers; ``{}`` matches all.
        Filters with the same canonical text select the same rows."""
        return self._root.key()

    @property
    def matches_all(self) -> bool:
        """True for the empty filter ``{}`` (and filters that reduce to it)."""
        return isinstance(self._root, _All)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MetadataFilter) and self.canonical() == other.canonical()

    def __hash__(self) -> int:
        return hash(self.canonical())

    def __repr__(self) -> str:
        return f"MetadataFilter({self.canonical()})"


def parse_filter(value: Any, field: str = "filter") -> MetadataFilter:
    """Pinecone's metadata filter language: $eq $ne $gt $gte $lt $lte $in $nin $exists
    $and $or; a bare value means $eq; several keys in one object mean $and. An unknown
    operator or a wrongly typed operand is InvalidInputError whose field is the path
    (`filter.year.$gte`, `filter.$or[1].genre.$in`)."""
    return MetadataFilter(_parse_object(value, field, 0))


def _parse_object(value: Any, path: str, depth: int) -> _Node:
    if not isinstance(value, Mapping):
        raise _invalid(path, f"expected a filter object, got {_type_name(value)}")
    if depth > FILTER_MAX_DEPTH:
        raise _invalid(path, f"filters nest at most {FILTER_MAX_DEPTH} levels deep")
    clauses: list[_Node] = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise _invalid(path, f"keys must be strings, got {_type_name(key)}")
        here = f"{path}.{key}"
        if key in _LOGICAL:
            if not isinstance(item, list | tuple):
                raise _invalid(here, f"expected a list of filter objects, got {_type_name(item)}")
            if not item:
                raise _invalid(here, "must hold at least one filter object")
            children = [_parse_object(c, f"{here}[{i}]", depth + 1) for i, c in enumerate(item)]
            clauses.append(_combine(key, children))
        elif key in _COMPARISONS:
            raise _invalid(
                here,
                f"{key} compares a field: put it under a field name, "
                f'as in {{"year": {{"{key}": ...}}}}',
            )
        elif key.startswith("$"):
            raise _invalid(here, f"unknown operator {key}; operators are {_OPERATORS}")
        else:
            clauses.extend(_parse_field(key, item, here))
    return _combine("$and", clauses)


def _parse_field(name: str, value: Any, path: str) -> list[_Node]:
    if not isinstance(value, Mapping):
        return [_Leaf(name, "$eq", _scalar(value, path))]
    if not value:
        raise _invalid(path, 'expected a value or an operator object such as {"$eq": ...}')
    leaves = []
    for op, operand in value.items():
        here = f"{path}.{op}"
        if op in _LOGICAL:
            raise _invalid(here, f"{op} combines filter objects: put it above field names")
        if not isinstance(op, str) or not op.startswith("$"):
            raise _invalid(
                here,
                "metadata values are not nested objects; compare with an operator "
                f"such as $eq ({_OPERATORS})",
            )
        if op not in _COMPARISONS:
            raise _invalid(here, f"unknown operator {op}; operators are {_OPERATORS}")
        leaves.append(_Leaf(name, op, _operand(op, operand, here)))
    return leaves


def _scalar(value: Any, path: str) -> str | bool | float:
    if isinstance(value, str | bool):
        return value
    if _is_number(value):
        return _finite(value, path)
    if value is None:
        raise _invalid(
            path,
            'null is not a metadata value; to match rows without the field use {"$exists": false}',
        )
    if isinstance(value, list | tuple):
        raise _invalid(
            path,
            'expected a string, number or boolean; to match any of several use {"$in": [...]}',
        )
    raise _invalid(path, f"expected a string, number or boolean, got {_type_name(value)}")


def _operand(op: str, value: Any, path: str) -> Any:
    if op in ("$eq", "$ne"):
        return _scalar(value, path)
    if op in _RANGES:
        if not _is_number(value):
            raise _invalid(path, f"expected a number, got {_type_name(value)}")
        return _finite(value, path)
    if op == "$exists":
        if not isinstance(value, bool):
            raise _invalid(path, f"expected true or false, got {_type_name(value)}")
        return value
    # $in / $nin
    if not isinstance(value, list | tuple):
        raise _invalid(path, f"expected a list of strings and numbers, got {_type_name(value)}")
    if len(value) > FILTER_MAX_IN_VALUES:
        raise _invalid(path, f"{len(value)} values; at most {FILTER_MAX_IN_VALUES}")
    strings: set[str] = set()
    numbers: set[float] = set()
    for i, element in enumerate(value):
        if isinstance(element, str):
            strings.add(element)
        elif _is_number(element):
            numbers.add(_finite(element, f"{path}[{i}]") + 0.0)  # -0.0 and 0.0 are one value
        else:
            raise _invalid(
                f"{path}[{i}]", f"expected a string or number, got {_type_name(element)}"
            )
    return tuple(sorted(strings)), tuple(sorted(numbers))
