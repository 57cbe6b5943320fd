"""The integer engines of the compressed scan: each one the app can select is exact at
the extremes on this CPU, an engine that saturates the way CPUs without VNNI do is
caught by the check and replaced, and the search stays exact either way."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from shared.search import int8_scan, quantized
from shared.settings import ConfigError, Settings
from tests.search.reference import METRICS, reference
from tests.search.saturating import (
    SATURATING,
    SATURATING_7BIT,
    candidates,
    saturating_dots,
    saturating_set,
)

F32 = int8_scan.NUMPY_F32


def _reference(codes: np.ndarray, u: np.ndarray) -> np.ndarray:
    return (codes.astype(np.int64) - int8_scan.CENTER) @ u.T.astype(np.int64)


def _code_sum(codes: np.ndarray) -> np.ndarray:
    return int8_scan.CENTER * codes.sum(axis=1, dtype=np.int64).astype(np.float64)


def _extreme_and_random(rng: np.random.Generator, d: int, levels: int):
    codes = rng.integers(0, 255, (300, d)).astype(np.uint8)
    codes[0], codes[1] = 254, 0
    codes[2, ::2], codes[2, 1::2] = 254, 0
    u = rng.integers(-levels, levels + 1, (4, d)).astype(np.int8)
    u[0], u[1] = levels, -levels
    return codes, u


@pytest.mark.parametrize("use", ["one", "batch"])
def test_every_engine_the_app_selects_is_exact_at_the_extremes(
    rng: np.random.Generator, use: str
) -> None:
    """Every engine this process may serve from (the first, and those it falls back to
    for wide sets), on codes at the ends of their ranges and on random ones."""
    selection = int8_scan.engines(use)
    assert selection.engines[-1] is F32  # the fallback exact everywhere is always there
    for engine in selection.engines:
        for d in (3, 384, 1536):
            codes, u = _extreme_and_random(rng, d, engine.levels)
            got = np.asarray(engine.dots(codes, _code_sum(codes), u))
            assert np.array_equal(got, _reference(codes, u)), (engine.name, d)


@pytest.mark.parametrize("engine", [*int8_scan.ONE, *int8_scan.BATCH], ids=lambda e: e.name)
def test_each_engine_exact_by_construction_passes_its_check_here(
    engine: int8_scan.Engine,
) -> None:
    """The engines whose inputs cannot overflow any kernel must pass on every CPU; the
    one that needs VNNI passes here or is left out of the selection."""
    problem = int8_scan.check(engine)
    if engine.by_construction:
        assert problem is None
    elif problem is not None:
        assert engine not in int8_scan.engines("batch").engines


def test_the_model_goes_wrong_where_the_cpus_without_vnni_do() -> None:
    """31,749 at d = 3 is what onnxruntime's gemm gave on an AVX2-only CPU; 7-bit
    queries cannot saturate it."""
    assert int8_scan.check(SATURATING) == "d=3: off by up to 31,749"
    assert int8_scan.check(SATURATING_7BIT) is None
    codes = np.full((1, 384), 254, np.uint8)
    u = np.full((1, 384), 127, np.int8)
    error = saturating_dots(codes, _code_sum(codes), u) - _reference(codes, u)
    assert abs(int(error[0, 0])) == 6_095_808  # as measured there at d = 384


def test_a_cpu_whose_gemm_saturates_gets_an_exact_engine_and_the_log_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=int8_scan.__name__):
        chosen = int8_scan.select("batch", (SATURATING, SATURATING_7BIT, F32))
    assert chosen.engines == (SATURATING_7BIT, F32)
    text = caplog.text
    assert "saturating-u8s8 is not exact on this CPU (d=3: off by up to 31,749)" in text
    assert "engine saturating-u8s8-7bit" in text and "in place of saturating-u8s8" in text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=int8_scan.__name__):
        assert int8_scan.select("batch", (SATURATING, F32)).engines == (F32,)
    assert "engine numpy-f32" in caplog.text


def test_an_engine_that_should_never_fail_its_check_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = int8_scan.Engine("broken", 63, 1000, saturating_dots)  # claims 7 bits, gets 8
    wrong = int8_scan.Engine("wrong", 127, 1000, lambda c, s, u: saturating_dots(c, s, u) + 1)
    with caplog.at_level(logging.INFO, logger=int8_scan.__name__):
        assert int8_scan.select("one", (wrong, F32)).engines == (F32,)
    assert [r.levelno for r in caplog.records if "wrong is not exact" in r.message] == [
        logging.WARNING
    ]
    assert int8_scan.check(broken) is None  # its own levels are safe ...
    with pytest.raises(RuntimeError, match="exact fallback failed"):
        int8_scan.select("one", (F32, wrong))  # ... and a failing last resort is fatal


def test_the_scaled_values_of_every_selected_engine_are_numpys_float32_products(
    rng: np.random.Generator,
) -> None:
    """What a cosine batch picks its entries by: each dot as float32 times its row's
    scale, rounded to nearest, whichever engine serves (in its session or in numpy), for
    scales of every size, a subnormal one among them."""
    for engine in int8_scan.engines("batch").engines:
        for d in (3, 384):
            codes, u = _extreme_and_random(rng, d, engine.levels)
            scale = rng.uniform(0.5, 1.0, len(codes)).astype(np.float32)
            scale[:4] = [1e-42, 0.0, 2.0**-120, 1.0]
            dots, values = int8_scan.scaled_dots(engine, codes, _code_sum(codes), u, scale)
            want = _reference(codes, u)
            assert np.array_equal(np.asarray(dots), want), (engine.name, d)
            expect = np.multiply(want.astype(np.float32), scale[:, None], dtype=np.float32)
            assert values.dtype == np.float32 and np.array_equal(values, expect), (engine.name, d)


def test_an_engine_whose_scaled_values_are_off_serves_its_dots_and_numpy_scales_them(
    rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    """A CPU where the session's cast or multiply rounds otherwise (or flushes subnormals
    to zero) keeps the engine's exact gemm; only the scaling moves to numpy, and the log
    says so."""

    def nudged(codes, code_sum, u, scale):  # one ulp up: what a wrong rounding gives
        dots = SATURATING_7BIT.dots(codes, code_sum, u)
        values = np.multiply(dots.astype(np.float32), scale[:, None], dtype=np.float32)
        return dots, np.nextafter(values, np.float32(np.inf))

    off = dataclasses.replace(SATURATING_7BIT, name="nudged-7bit", scaled=nudged)
    assert int8_scan.check(off) is None
    why = int8_scan.check_scaled(off)
    assert why == "its values are not the float32 products rounded to nearest"
    with caplog.at_level(logging.INFO, logger=int8_scan.__name__):
        chosen = int8_scan.select("batch", (off, F32))
    assert [e.name for e in chosen.engines] == ["nudged-7bit", "numpy-f32"]
    assert chosen.engines[0].scaled is None and chosen.engines[0].dots is off.dots
    assert "engine nudged-7bit scales its dots inexactly on this CPU" in caplog.text
    assert "engine nudged-7bit (checked exact" in caplog.text  # not "in place of" itself
    m, queries = saturating_set(rng)
    qr = quantized.quantize(m)
    want = [reference(m, q, 10, "cosine").tolist() for q in queries]
    with candidates(batch=(off, F32)):
        got = quantized.search_batch(qr, queries, 10, "cosine")
    assert [r.indices.tolist() for r in got] == want


@pytest.mark.parametrize("metric", METRICS)
def test_the_search_stays_exact_on_a_cpu_whose_gemm_saturates(
    rng: np.random.Generator, metric: str
) -> None:
    m, queries = saturating_set(rng)
    qr = quantized.quantize(m)
    want = [reference(m, q, 10, metric).tolist() for q in queries]

    def batch() -> list[list[int]]:
        return [r.indices.tolist() for r in quantized.search_batch(qr, queries, 10, metric)]

    saved = dict(int8_scan._selected)
    try:  # served unchecked, as it would be without the check: the set is adversarial enough
        int8_scan._selected["batch"] = int8_scan.Selection((SATURATING,))
        assert batch() != want
    finally:
        int8_scan._selected.clear()
        int8_scan._selected.update(saved)
    with candidates(batch=(SATURATING, SATURATING_7BIT, F32)):
        assert int8_scan.engines("batch").engines[0] is SATURATING_7BIT
        assert batch() == want
    with candidates(one=(F32,), batch=(SATURATING, F32)):
        assert int8_scan.engines("batch").engines[0] is F32
        assert batch() == want
        assert [quantized.search(qr, q, 10, metric).indices.tolist() for q in queries] == want


def test_sets_wider_than_an_engines_bound_use_the_next_engine(rng: np.random.Generator) -> None:
    """simsimd's int32 accumulator wraps past d = 33,285 at full-range codes: a wider
    set is scanned by the fallback, and stays exact."""
    assert int8_scan.engines("one").pick(33_286) is F32
    assert int8_scan.engines("batch").pick(384).levels in (63, 127)
    d = 34_000
    m = rng.standard_normal((60, d)).astype(np.float32)
    m[5] = np.sign(m[5])  # full-range codes: where a wrapped accumulator shows
    qr = quantized.quantize(m)
    for metric in METRICS:
        q = m[5] * 1.5
        assert quantized.search(qr, q, 5, metric).indices.tolist() == (
            reference(m, q, 5, metric).tolist()
        )
        got = quantized.search_batch(qr, np.stack([q, -q]), 5, metric)
        assert got[1].indices.tolist() == reference(m, -q, 5, metric).tolist()


def test_the_float32_fallback_slices_so_no_partial_sum_loses_a_digit(
    rng: np.random.Generator,
) -> None:
    d = 20_000
    codes = np.full((3, d), 254, np.uint8)
    codes[1] = 0
    u = rng.integers(100, 128, (2, d)).astype(np.int8)
    u[1, ::3] *= -1
    want = _reference(codes, u)
    naive = (codes.astype(np.float32) - 127) @ u.T.astype(np.float32)
    assert not np.array_equal(naive.astype(np.int64), want)  # one float32 sum rounds
    assert np.array_equal(int8_scan.f32_dots(codes, _code_sum(codes), u), want)


def test_the_checked_dimensions_reach_the_largest_the_settings_accept() -> None:
    largest = int8_scan.LARGEST_DIM
    assert Settings.from_env({"MAX_VECTOR_DIM": str(largest)}).max_vector_dim == largest
    with pytest.raises(ConfigError, match="between 1 and"):
        Settings.from_env({"MAX_VECTOR_DIM": str(largest + 1)})


def test_a_one_query_scan_split_over_threads_gives_every_row_once(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(int8_scan, "SPLIT_ROWS", 100)
    monkeypatch.setattr(int8_scan, "THREADS", 3)  # more parts than the pool has threads
    codes, u = _extreme_and_random(rng, 384, 127)
    got = int8_scan.SIMSIMD_U8.dots(codes, _code_sum(codes), u[:1])
    assert got.shape == (300, 1) and np.array_equal(got, _reference(codes, u[:1]))
