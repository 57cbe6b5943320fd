"""The dynamic batcher: who runs with whom, what each caller gets back, and its bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared import batching
from shared.batching import Batcher
from shared.errors import TooBusyError
from tests.support.concurrent import together


class Recorder:
    """A batch function that doubles its items and records each batch it ran."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[tuple[Hashable, list[int]]] = []
        self.gate = gate
        self.lock = threading.Lock()

    def __call__(self, key: Hashable, items: Sequence[int]) -> list[int]:
        if self.gate is not None:
            assert self.gate.wait(30)
        if any(i < 0 for i in items):
            raise ValueError(f"negative item in {list(items)}")
        with self.lock:
            self.batches.append((key, list(items)))
        return [2 * i for i in items]


def test_concurrent_calls_of_one_key_run_as_one_batch_and_each_gets_its_own_result() -> None:
    run = Recorder()
    batcher = Batcher("t", run, max_batch=8, max_delay=5.0, max_queue=64)
    assert together(8, lambda i: batcher.submit("k", i)) == [2 * i for i in range(8)]
    # A full batch does not wait out its delay: it runs as soon as it has 8.
    assert len(run.batches) == 1 and sorted(run.batches[0][1]) == list(range(8))


def test_keys_are_never_mixed_and_a_batch_holds_at_most_max_batch() -> None:
    run = Recorder()
    batcher = Batcher("t", run, max_batch=3, max_delay=0.2, max_queue=64)
    results = together(12, lambda i: batcher.submit(i % 2, i))
    assert results == [2 * i for i in range(12)]
    assert all(len(items) <= 3 for _, items in run.batches)
    assert all(all(i % 2 == key for i in items) for key, items in run.batches)
    assert sorted(i for _, items in run.batches for i in items) == list(range(12))
    assert len(run.batches) < 12  # calls did run together


def test_one_callers_bad_input_fails_only_that_caller() -> None:
    run = Recorder()
    batcher = Batcher("t", run, max_batch=6, max_delay=5.0, max_queue=64)
    results = together(6, lambda i: batcher.submit("k", -1 if i == 3 else i))
    assert isinstance(results[3], ValueError) and "[-1]" in str(results[3])
    assert [r for i, r in enumerate(results) if i != 3] == [0, 2, 4, 8, 10]


def test_past_its_queue_a_call_is_refused_at_once_not_queued() -> None:
    gate = threading.Event()
    run = Recorder(gate)
    batcher = Batcher("search", run, max_batch=2, max_delay=0.0, max_queue=2)
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(batcher.submit, "k", i) for i in range(2)]
        deadline = time.monotonic() + 10
        while batcher._queued.get("k", 0) < 2:  # both taken in and held by the gate
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.perf_counter()
        with pytest.raises(TooBusyError) as refused:
            batcher.submit("k", 9)
        assert time.perf_counter() - started < 1  # refused, not made to wait
        assert refused.value.retry_after == 1 and "2 search calls are queued" in str(refused.value)
        gate.set()
        assert sorted(f.result(timeout=30) for f in held) == [0, 2]
    assert batcher._queued == {}  # everything accounted for: the next call is taken in
    assert batcher.submit("k", 4) == 8


def test_a_batch_of_one_runs_without_waiting_for_company() -> None:
    run = Recorder()
    batcher = Batcher("t", run, max_batch=1, max_delay=5.0, max_queue=4)
    started = time.perf_counter()
    assert batcher.submit("k", 21) == 42
    assert time.perf_counter() - started < 1 and run.batches == [("k", [21])]


def test_limits_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError):
        Batcher("t", Recorder(), max_batch=4, max_delay=0.001, max_queue=2)


def test_a_lone_call_starts_at_once_and_calls_during_a_batch_gather_into_the_next() -> None:
    gate = threading.Event()
    run = Recorder(gate)
    batcher = Batcher("t", run, max_batch=8, max_delay=0.0, max_queue=64)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher.submit, "k", 0)
        deadline = time.monotonic() + 10
        while batcher._running.get("k") != 1:  # running alone, held by the gate
            assert time.monotonic() < deadline
            time.sleep(0.01)
        later = [pool.submit(batcher.submit, "k", i) for i in range(1, 6)]
        while batcher._queued.get("k", 0) < 6:  # all five wait for the running batch
            assert time.monotonic() < deadline
            time.sleep(0.01)
        gate.set()
        assert first.result(timeout=30) == 0
        assert [f.result(timeout=30) for f in later] == [2, 4, 6, 8, 10]
    assert [sorted(items) for _, items in run.batches] == [[0], [1, 2, 3, 4, 5]]


def test_a_batch_holds_at_most_max_batch_rows_and_a_large_call_runs_alone() -> None:
    run = Recorder()
    batcher = Batcher("t", run, max_batch=4, max_delay=0.3, max_queue=64)
    rows = [1, 3, 2, 2, 1, 4, 6]  # the 6-row call is more than a batch holds
    sizes = dict(enumerate(rows))
    got = together(len(rows), lambda i: batcher.submit("k", i, rows[i]))
    assert got == [2 * i for i in range(len(rows))]
    assert all(sum(sizes[i] for i in items) <= 4 or len(items) == 1 for _, items in run.batches)
    assert [items for _, items in run.batches if 6 in items] == [[6]]
    assert sorted(i for _, items in run.batches for i in items) == list(range(len(rows)))
    assert batcher.batches == len(run.batches)


def test_a_models_limits_override_the_settings_and_are_checked() -> None:
    from shared.batching import Batchers, BatchLimits, check_model_option

    base = BatchLimits(16, 0.0, 256)
    assert base.for_model(None) is base and base.for_model({"uploaded_as": "x"}) is base
    assert base.for_model({"batch_max_size": "1"}) == BatchLimits(1, 0.0, 256)
    assert not base.for_model({"batch_max_size": "1"}).enabled
    assert base.for_model({"batch_max_delay_ms": "2.5"}) == BatchLimits(16, 2.5, 256)
    for key, value in [("batch_max_size", "0"), ("batch_max_size", "2.5"),
                       ("batch_max_size", "x"), ("batch_max_size", "1025"),
                       ("batch_max_delay_ms", "-1"), ("batch_max_delay_ms", "1001"),
                       ("batch_max_delay_ms", "soon")]:  # fmt: skip
        assert check_model_option(key, value), (key, value)
    assert check_model_option("batch_max_size", "8") is None
    assert check_model_option("batch_max_delay_ms", "0.5") is None
    # One batcher per distinct limits, shared by every model with those limits.
    batchers = Batchers("t", Recorder())
    assert batchers.get(base) is batchers.get(BatchLimits(16, 0.0, 256))
    assert batchers.get(base) is not batchers.get(BatchLimits(4, 0.0, 256))
    assert batchers.get(BatchLimits(4, 0.0, 256)).max_batch == 4


class Slow(Recorder):
    """A batch that takes a few ms, so callers looping on it overlap."""

    def __call__(self, key: Hashable, items: Sequence[int]) -> list[int]:
        time.sleep(0.005)
        return super().__call__(key, items)


def _closed_loop(batcher: Batcher, callers: int, calls: int) -> None:
    """Each caller submits its next call as soon as its last one returns."""

    def caller(i: int) -> list[object]:
        return [batcher.submit("k", i) for _ in range(calls)]

    assert together(callers, caller) == [[2 * i] * calls for i in range(callers)]


def test_callers_under_steady_load_keep_running_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When a batch of several ends, the first of its callers back waits for the
    others: batches stay whole instead of splitting into one caller and the rest."""
    # Generous, so no timing is in play; the last batch waits it out for a caller
    # that is done (the one that ran alone first has one call fewer left).
    monkeypatch.setattr(batching, "REJOIN_SECONDS", 0.5)
    run = Slow()
    batcher = Batcher("t", run, max_batch=8, max_delay=0.0, max_queue=64)
    _closed_loop(batcher, callers=6, calls=12)
    sizes = [len(items) for _, items in run.batches]
    assert sum(sizes) == 72
    # The start can split once (the first caller runs alone while the others gather);
    # from the third batch on, every caller is in every batch.
    assert len(sizes) >= 12 and sizes[2:-1] == [6] * (len(sizes) - 3), sizes


def test_without_the_rejoin_window_closed_loop_callers_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The window is what keeps them together: with none, the first caller back runs
    alone whenever no batch is running."""
    monkeypatch.setattr(batching, "REJOIN_SECONDS", 0.0)
    run = Slow()
    batcher = Batcher("t", run, max_batch=8, max_delay=0.0, max_queue=64)
    _closed_loop(batcher, callers=6, calls=12)
    assert any(len(items) < 6 for _, items in run.batches)


def test_a_lone_call_after_the_window_runs_alone_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batching, "REJOIN_SECONDS", 0.05)
    run = Recorder()
    batcher = Batcher("t", run, max_batch=8, max_delay=5.0, max_queue=64)
    assert together(4, lambda i: batcher.submit("k", i)) == [0, 2, 4, 6]
    lone = Batcher("t", run, max_batch=8, max_delay=0.0, max_queue=64)
    lone._ended["k"] = batching._Ended(time.perf_counter() - 1.0, 4)  # long over
    assert lone.submit("k", 5) == 10
    assert run.batches[-1] == ("k", [5]) and "k" not in lone._ended
