"""Run code on the kernels another x86 CPU would get, on this one.

Azure runs the app on many CPU generations, and integer SIMD differs between them (see
``shared/search/int8_scan.py``). ``benchmarks/cpumask.c``, preloaded into a Python
process, makes CPUID report fewer extensions, so every library in that process picks
the kernels it would pick on the older CPU and runs them here for real. It needs CPUID
faulting (``cpuid_fault`` in /proc/cpuinfo: Intel CPUs since Ivy Bridge, also under
KVM) and gcc; ``available()`` says whether this machine has both.

Paths: ``native`` (this CPU as it is), ``avx512-no-vnni`` (Skylake-SP), ``avx-vnni``
(AVX2 with AVX-VNNI), ``avx2`` (Haswell to Zen 3)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(__file__).with_name("cpumask.c")
LIBRARY = ROOT / ".tools" / "cpumask.so"
PATHS = ("native", "avx512-no-vnni", "avx-vnni", "avx2")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def available() -> bool:
    """Whether this machine can show the other paths (x86 CPUID faulting, gcc)."""
    return "cpuid_fault" in cpu_flags() and shutil.which("gcc") is not None


def library() -> Path:
    """The preload library, built from ``cpumask.c`` when missing or older."""
    if not LIBRARY.exists() or LIBRARY.stat().st_mtime < SOURCE.stat().st_mtime:
        LIBRARY.parent.mkdir(parents=True, exist_ok=True)
        # Built aside and renamed: parallel test workers may build it at the same time.
        built = LIBRARY.with_name(f"{LIBRARY.name}.{os.getpid()}.tmp")
        subprocess.run(
            ["gcc", "-O2", "-shared", "-fPIC", str(SOURCE), "-o", str(built)], check=True
        )
        os.replace(built, LIBRARY)
    return LIBRARY


def environ(path: str) -> dict[str, str]:
    """The environment of a Python subprocess that runs on ``path``'s kernels."""
    if path not in PATHS:
        raise ValueError(f"unknown CPU path {path!r}; one of {', '.join(PATHS)}")
    env = dict(os.environ)
    if path == "native":
        return env
    env["LD_PRELOAD"] = str(library())
    env["CPUMASK"] = path
    return env


def flags_seen() -> str:
    """The SIMD extensions that tell the paths apart, as this process's libraries see
    them (numpy's own CPUID reading; /proc/cpuinfo always shows the real CPU). numpy does
    not report AVX-VNNI: the path's name says whether it is hidden."""
    from numpy._core._multiarray_umath import __cpu_features__ as features

    names = ("AVX2", "AVX512F", "AVX512BW", "AVX512VNNI")
    return " ".join(n.lower() for n in names if features.get(n)) or "no avx2"


def run(path: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """``python argv...`` on ``path``'s kernels, from the repository root."""
    return subprocess.run(
        [sys.executable, *argv],
        env=environ(path),
        cwd=ROOT,
        text=True,
        capture_output=True,
        **kwargs,
    )
