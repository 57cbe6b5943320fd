"""Loaded onnxruntime sessions, cached and warmed, so "ready" means a run already worked.

Creating a session parses and optimises the graph (tens of ms to seconds), and the first
run allocates the arena; both happen here, once per model version and process, under a
per-key lock so concurrent first requests load once. The cache is an LRU bounded by count,
and the process has one (``shared.inference.service.sessions``): inference and text embedding
both take their sessions from it, so ``MAX_SESSIONS`` bounds every loaded model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from shared.inference.protocol.types import (
    DATATYPES,
    InputSpecs,
    TensorSpec,
    datatype_from_ort,
    normalize_dim,
)
from shared.public_text import without_paths
from shared.registry.errors import InferenceInputError, ModelValidationError
from shared.settings import usable_cores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedSession:
    """A warmed session with its input and output specs."""

    key: str
    path: Path
    session: Any  # onnxruntime.InferenceSession
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    load_seconds: float
    warmup_seconds: float
    run_errors: tuple[type[BaseException], ...] = field(default=(), repr=False)

    @cached_property
    def output_names(self) -> list[str]:
        """Outputs the protocol can return (tensors; sequences and maps are left out).
        Made once per session and shared by every request: read it, never change it."""
        return [s.name for s in self.outputs if s.is_tensor]

    @cached_property
    def batch_dimension(self) -> bool:
        """Whether the model declares its first dimension the batch (``has_batch_dimension``)."""
        return has_batch_dimension(self.inputs, self.outputs)

    @cached_property
    def input_specs(self) -> InputSpecs:
        """The inputs indexed for decoding, once per session rather than per request."""
        return InputSpecs(self.inputs)

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list:
        """``session.run``; a runtime failure on validated inputs is the caller's input."""
        try:
            return self.session.run(output_names, feeds)
        except self.run_errors as exc:
            raise InferenceInputError(
                f"the model could not run on these inputs: {str(exc).strip()[:300]}"
            ) from None


def has_batch_dimension(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> bool:
    """True when the shapes a model declares make its first dimension the batch: every
    input a tensor whose first dimension is variable, all of them one symbol when named,
    and every tensor output's first dimension variable too (that symbol when both are
    named), or of unknown rank. A fixed first dimension (``[1, 3, 224, 224]``), a scalar
    or inputs of unknown rank say the model has no batch dimension."""
    symbols = set()
    for spec in inputs:
        if not spec.is_tensor or not spec.shape:
            return False
        first = spec.shape[0]
        if isinstance(first, int) and first >= 0:
            return False
        if isinstance(first, str):
            symbols.add(first)
    if not inputs or len(symbols) > 1:
        return False
    for spec in outputs:
        if not spec.is_tensor or spec.shape is None:
            continue
        if not spec.shape:
            return False
        first = spec.shape[0]
        if isinstance(first, int) and first >= 0:
            return False
        if isinstance(first, str) and symbols and first not in symbols:
            return False
    return True


def spec_from_ort(node: Any) -> TensorSpec:
    """A TensorSpec from onnxruntime's NodeArg (None dims become -1)."""
    datatype = datatype_from_ort(node.type)
    is_tensor = node.type.startswith("tensor(")
    shape = node.shape if is_tensor else None
    dims = None if shape is None else tuple(normalize_dim(d) for d in shape)
    return TensorSpec(node.name, datatype, dims, is_tensor)


def warmup_feeds(specs: Sequence[TensorSpec], fill: int) -> dict[str, np.ndarray]:
    """Inputs filled with ``fill`` (0 or 1); variable dimensions become 1."""
    feeds = {}
    for spec in specs:
        if not spec.is_tensor or spec.datatype not in DATATYPES:
            raise ModelValidationError(
                f"input {spec.name!r} has type {spec.datatype}; only tensors of the Open "
                "Inference Protocol datatypes can be served"
            )
        dims = (1,) if spec.shape is None else spec.shape
        shape = tuple(d if isinstance(d, int) and d >= 0 else 1 for d in dims)
        dtype = DATATYPES[spec.datatype][0]
        if spec.datatype == "BYTES":
            feeds[spec.name] = np.full(shape, str(fill), dtype=object)
        else:
            feeds[spec.name] = np.full(shape, fill, dtype=dtype)
    return feeds


class SessionCache:
    """LRU of warmed sessions, keyed by model id (one entry per model version)."""

    def __init__(self, max_sessions: int, *, intra_op_threads: int | None = None) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be >= 1")
        if intra_op_threads is not None and intra_op_threads < 1:
            raise ValueError("intra_op_threads must be >= 1")
        self.max_sessions = max_sessions
        self.intra_op_threads = intra_op_threads
        self._sessions: OrderedDict[str, LoadedSession] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.loads = 0  # sessions created (a hit does not count)

    def __len__(self) -> int:
        return len(self._sessions)

    def keys(self) -> list[str]:
        """Loaded keys, least recently used first."""
        with self._lock:
            return list(self._sessions)

    def lookup(self, key: str) -> LoadedSession | None:
        """The loaded session for ``key`` (marked recently used), or None; never loads."""
        with self._lock:
            hit = self._sessions.get(key)
            if hit is not None:
                self._sessions.move_to_end(key)
            return hit

    def get(self, key: str, path: Path) -> LoadedSession:
        """The warmed session for ``key``, loading ``path`` on a miss."""
        with self._lock:
            hit = self._sessions.get(key)
            if hit is not None:
                self._sessions.move_to_end(key)
                return hit
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                hit = self._sessions.get(key)
                if hit is not None:
                    self._sessions.move_to_end(key)
                    return hit
            loaded = self._load(key, Path(path))
            with self._lock:
                self._sessions[key] = loaded
                self._sessions.move_to_end(key)
                while len(self._sessions) > self.max_sessions:
                    old, _ = self._sessions.popitem(last=False)
                    self._key_locks.pop(old, None)
                self.loads += 1
            return loaded

    def get_or_fetch(self, key: str, fetch: Callable[[], Path]) -> LoadedSession:
        """The warmed session for ``key``; on a miss ``fetch()`` gives the local file.

        A file evicted from the local file cache (by another process) between the fetch
        and the load is fetched once more.
        """
        hit = self.lookup(key)
        if hit is not None:
            return hit
        for attempt in (1, 2):
            try:
                return self.get(key, fetch())
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _options(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        # onnxruntime's own default counts the host's cores, not the instance's share.
        options.intra_op_num_threads = self.intra_op_threads or usable_cores()
        # Idle intra-op threads sleep instead of spinning: a served process has many
        # concurrent callers, whose work the spinning threads would take CPU from
        # (measured in docs/concurrency.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: warnings here are not actionable
        return options

    def _load(self, key: str, path: Path) -> LoadedSession:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        start = time.perf_counter()
        try:
            session = ort.InferenceSession(
                str(path), self._options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's pybind errors share no useful base class
            reason = _reason(exc)
            raise ModelValidationError(f"onnxruntime cannot load the model: {reason}") from None
        loaded_at = time.perf_counter()
        inputs = tuple(spec_from_ort(n) for n in session.get_inputs())
        outputs = tuple(spec_from_ort(n) for n in session.get_outputs())
        errors = (ort_state.Fail, ort_state.InvalidArgument, ort_state.RuntimeException)
        for fill in (0, 1):
            try:
                session.run(None, warmup_feeds(inputs, fill))
                break
            except errors as exc:
                failure = _reason(exc)
        else:
            # Warm-up feeds are made up (batch 1, zeros or ones); a model may need
            # others (a Reshape to 3 rows): the request's own inputs decide, not this.
            log.warning("model %s: warm-up run failed, serving it anyway: %s", key, failure)
        done = time.perf_counter()
        return LoadedSession(
            key=key,
            path=path,
            session=session,
            inputs=inputs,
            outputs=outputs,
            load_seconds=loaded_at - start,
            warmup_seconds=done - loaded_at,
            run_errors=errors,
        )


def check_loadable(path: Path) -> None:
    """Open the model in onnxruntime once, unoptimised, and let it go. Why: onnx's checker
    accepts models onnxruntime cannot run (an op of an unknown domain, an opset it lacks);
    without this check such a model would be listed ready and answer 422 to every request."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's pybind errors share no useful base class
        reason = _reason(exc)
        raise ModelValidationError(f"onnxruntime cannot load the model: {reason}") from None


def _reason(exc: BaseException, limit: int = 300) -> str:
    """onnxruntime's message for a user: no file paths (the model cache's, or its own
    source tree's), cut at a word, not mid-word."""
    text = without_paths(" ".join(str(exc).split()))
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"
