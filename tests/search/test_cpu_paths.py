"""The compressed search on the kernels other CPUs get, run for real on this one
(``benchmarks/cpu_paths.py``: CPUID made to report fewer extensions). Skipped where the
CPU cannot fault on CPUID; the saturating model in ``saturating.py`` covers those."""

from __future__ import annotations

import json

import pytest

from benchmarks import cpu_paths

pytestmark = pytest.mark.skipif(
    not cpu_paths.available(), reason="no CPUID faulting here: other CPU paths cannot be shown"
)


def _probe(path: str) -> dict:
    done = cpu_paths.run(path, ["-m", "tests.search.cpu_path_probe"], timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", ["avx2", "avx512-no-vnni"])
def test_cpus_without_vnni_refuse_the_8_bit_gemm_and_stay_exact(path: str) -> None:
    """On these the real onnxruntime gemm saturates with 8-bit queries (AVX2, and AVX-512
    without VNNI): the check sees it, and the 7-bit gemm serves."""
    got = _probe(path)
    assert "avx512vnni" not in got["flags"]
    assert ("avx512f" in got["flags"]) == (path == "avx512-no-vnni")
    assert "onnxruntime-u8s8 is not exact on this CPU (d=3: off by up to 31,749)" in got["log"]
    assert got["engines"]["batch"][0] == "onnxruntime-u8s8-7bit"
    assert got["wrong"] == 0


def test_a_cpu_with_avx_vnni_only_stays_exact() -> None:
    got = _probe("avx-vnni")
    assert got["flags"] == "avx2"
    assert got["engines"]["batch"][-1] == "numpy-f32"
    assert got["wrong"] == 0
