"""Vectors in the SQL storage format (little-endian float32 bytes) and back."""

from __future__ import annotations

import numpy as np


def blob(v: np.ndarray) -> bytes:
    """A float32 array in the SQL storage format (little-endian float32 bytes)."""
    return np.asarray(v, dtype="<f4").tobytes()


def unblob(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4").astype(np.float32)
