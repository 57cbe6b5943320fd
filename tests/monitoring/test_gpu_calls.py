"""No NVIDIA GPU here, so the device path of shared/monitoring/gpu.py cannot run: at
least every NVML call it makes must exist in the installed nvidia-ml-py, with the
fields it reads, so a misspelt call cannot hide until a GPU host."""

from __future__ import annotations

import re

import pytest

from shared.settings import ROOT

pynvml = pytest.importorskip("pynvml")


def test_every_nvml_call_the_gpu_reader_makes_exists() -> None:
    source = (ROOT / "shared" / "monitoring" / "gpu.py").read_text()
    calls = set(re.findall(r"\b(?:lib|pynvml)\.(nvml\w+)", source))
    assert {"nvmlInit", "nvmlDeviceGetCount", "nvmlDeviceGetMemoryInfo"} <= calls
    for name in sorted(calls):
        assert callable(getattr(pynvml, name, None)), name


def test_the_structures_read_have_the_fields_used() -> None:
    utilization = {f[0] for f in pynvml.c_nvmlUtilization_t._fields_}
    memory = {f[0] for f in pynvml.c_nvmlMemory_t._fields_}
    assert "gpu" in utilization
    assert {"used", "total"} <= memory
