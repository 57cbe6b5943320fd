"""onnxruntime sessions of one-node graphs, run as matrix kernels.

onnxruntime's MLAS has the fastest gemm kernels this package can reach with its
requirements alone: its float32 ``Gemm`` scores a block of row-major rows against a
batch of queries about twice as fast as numpy's BLAS here, and its ``MatMulInteger`` is
the u8 x s8 product numpy lacks. Each graph is a few hundred bytes built in memory (no
model file ships), and each session is built once per process and thread count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime as ort
    from onnx import GraphProto

_lock = threading.Lock()
_sessions: dict[tuple[str, int], ort.InferenceSession] = {}


def kernel_session(
    name: str, graph: Callable[[], GraphProto], threads: int, opset: int = 13
) -> ort.InferenceSession:
    """The session of the graph ``graph()`` builds, cached under ``(name, threads)``."""
    got = _sessions.get((name, threads))
    if got is not None:
        return got
    with _lock:
        got = _sessions.get((name, threads))
        if got is None:
            import onnxruntime as ort
            from onnx import helper

            model = helper.make_model(graph(), opset_imports=[helper.make_opsetid("", opset)])
            model.ir_version = 8
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Sleep, not spin, between runs: spinning threads take CPU from concurrent
            # searches (docs/concurrency.md has the figures).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            got = ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
            _sessions[(name, threads)] = got
    return got
