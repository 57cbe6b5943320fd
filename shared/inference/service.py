"""Inference over registered models, speaking the Open Inference Protocol.

Per request: find the model version and its warmed session (in memory, see below), decode
and check the inputs against the session's specs (indexed once per session), run, encode,
and queue one inference log row (written by a background thread: repository.py). The model
itself was validated at ingestion; nothing here re-reads or re-checks it.

Which version serves: ``resolve`` reads the models table (one indexed query) and what it
finds ready is remembered per (name, version asked) for ``refresh_seconds`` (1 s by
default). Within that time a call whose session is still loaded asks the table nothing;
the first call after it reads the table again. So, per process:

- a version that stays ready keeps serving, from the same warmed session, throughout;
- a newer version marked ready is served by calls without a version within
  ``refresh_seconds`` (at once after a metadata or readiness request for the name, which
  resolve too);
- a version marked failed, or gone, stops serving within ``refresh_seconds``;
- refusals (not registered, not ready) are never remembered: a model that becomes ready
  is served by the next call;
- a session evicted from the session cache, or one that failed to load, sends the call
  through ``resolve`` again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from shared import telemetry
from shared.batching import BatchLimits, limits_from_settings
from shared.inference.dynamic_batching import DynamicBatching
from shared.inference.file_cache import ModelFileCache
from shared.inference.protocol.types import (
    InferRequest,
    InferResponse,
    TensorSpec,
    built,
    decode_inputs,
    encode_outputs,
    first_confidence,
    model_metadata,
)
from shared.inference.repository import FLUSH_SECONDS, InferenceLogRepository
from shared.inference.sessions import LoadedSession, SessionCache
from shared.registry.errors import (
    InferenceInputError,
    ModelError,
    ModelNotFoundError,
    ModelNotReadyError,
)
from shared.registry.repository import ModelRecord, ModelRepository
from shared.registry.status import ModelStatus
from shared.vectors.pool import BufferPool

log = logging.getLogger(__name__)

DEFAULT_MAX_ELEMENTS = 16 * 1024 * 1024  # tensor elements per request, all inputs together
DEFAULT_REFRESH_SECONDS = 1.0  # a resolved version serves this long before the table is asked


def _specs(items: Any) -> tuple[TensorSpec, ...] | None:
    """Specs from stored metadata ({name, datatype, shape}); None if absent or malformed."""
    if not isinstance(items, list):
        return None
    try:
        return tuple(
            TensorSpec(
                i["name"],
                i["datatype"],
                None if i.get("shape") is None else tuple(i["shape"]),
                i["datatype"].isupper(),  # non-tensors are stored as seq(...)/map(...)
            )
            for i in items
        )
    except (KeyError, TypeError, AttributeError):
        return None


class InferenceService:
    """Metadata, readiness and inference for registered models (no Functions types here)."""

    def __init__(
        self,
        models: ModelRepository,
        log: InferenceLogRepository,
        files: ModelFileCache,
        sessions: SessionCache,
        download: Callable[[ModelRecord, Path], None],
        pool: BufferPool | None = None,
        *,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        batching: BatchLimits | None = None,
    ) -> None:
        """``refresh_seconds``: how long a resolved version serves before the models table
        is read again (module docstring); ``clock`` gives monotonic seconds for it.
        ``batching``: concurrent calls of one version run as one call of the model where
        that cannot change their answers (``dynamic_batching``); None: each alone, unless
        a model's registration sets its own ``batch_max_size``."""
        self.models = models
        self.log = log
        self.files = files
        self.sessions = sessions
        self.download = download
        self.pool = pool
        self.max_elements = max_elements
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.batching = DynamicBatching(batching or BatchLimits(1, 0.0, 1))
        # (name, version asked or None) -> (the ready record, clock time it serves until)
        self._resolved: dict[tuple[str, int | None], tuple[ModelRecord, float]] = {}

    # -- the server and its extensions ----------------------------------------------
    def server_ready(self) -> None:
        """Raises when the database, which every model call reads, does not answer."""
        self.models.db.scalar("SELECT 1 AS one")

    def repository_index(self, *, ready_only: bool = False) -> list[dict[str, Any]]:
        from shared.inference.protocol.extensions import repository_index

        return repository_index(self.models, ready_only=ready_only)

    def stats(self, name: str, version: int | None) -> dict[str, Any]:
        from shared.inference.protocol.extensions import model_stats

        return model_stats(self.models, self.log, name, version)

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait until the inference log rows of calls so far are written (False if
        ``timeout`` ran out); the log's own reads do this already."""
        return self.log.flush(timeout)

    # -- resolution ------------------------------------------------------------------
    def resolve(self, name: str, version: int | None = None) -> ModelRecord:
        """The newest ready version of ``name``, or the given version if it is ready,
        from the models table; it serves calls for ``refresh_seconds`` from then on."""
        key = (name, version)
        try:
            record = self._read(name, version)
        except ModelError:
            self._resolved.pop(key, None)
            raise
        self._resolved[key] = (record, self.clock() + self.refresh_seconds)
        return record

    def _read(self, name: str, version: int | None) -> ModelRecord:
        if version is None:
            record = self.models.latest(name, ready_only=True)
            if record is not None:
                return record
            latest = self.models.latest(name)
            if latest is None:
                raise ModelNotFoundError(f"model {name!r} is not registered")
            record = latest
        else:
            record = self.models.get_version(name, version)
            if record is None:
                raise ModelNotFoundError(f"model {name!r} has no version {version}")
        if record.status != ModelStatus.READY:
            detail = f": {record.error}" if record.error else ""
            which = f"model {name!r}" if version is None else f"model {name!r} version {version}"
            raise ModelNotReadyError(f"{which} is {record.status}{detail}")
        return record

    def _serving(self, name: str, version: int | None) -> tuple[ModelRecord, LoadedSession]:
        """The record and warmed session that serve a call: from memory while the version
        was resolved within ``refresh_seconds`` and its session is loaded, else resolved."""
        hit = self._resolved.get((name, version))
        if hit is not None and hit[1] > self.clock():
            loaded = self.sessions.lookup(hit[0].id)  # keeps the LRU order of use
            if loaded is not None:
                return hit[0], loaded
        record = self.resolve(name, version)
        return record, self._session(record)

    def _session(self, record: ModelRecord) -> LoadedSession:
        loaded = self.sessions.lookup(record.id)
        if loaded is not None:
            return loaded
        if not record.sha256:
            raise ModelNotReadyError(f"model {record.name!r} has no sha256 recorded")
        sha256 = record.sha256
        return self.sessions.get_or_fetch(
            record.id, lambda: self.files.path_for(sha256, lambda dest: self.download(record, dest))
        )

    def ensure_loaded(self, name: str, version: int | None = None) -> LoadedSession:
        """Resolve, fetch and load (warm) the model; errors say why it cannot serve."""
        return self._session(self.resolve(name, version))

    def ready(self, name: str, version: int | None = None) -> bool:
        """True once the version is ``ready`` and its session is loaded and warmed.

        Loads it if needed (a readiness probe warms the model). An unknown model or version
        raises ModelNotFoundError (a 404); any other reason it cannot serve gives False.
        """
        try:
            self.ensure_loaded(name, version)
        except ModelNotFoundError:
            raise
        except ModelError as exc:
            log.info("model %s not ready: %s", name, exc.reason)
            return False
        return True

    def metadata(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The OIP model metadata body, from what ingestion stored (no session needed)."""
        record = self.resolve(name, version)
        inputs = _specs(record.metadata.get("inputs"))
        outputs = _specs(record.metadata.get("outputs"))
        if inputs is None or outputs is None:
            loaded = self._session(record)
            inputs, outputs = loaded.inputs, loaded.outputs
        versions = sorted(
            {r.version for r in self.models.list(name=name, status=ModelStatus.READY, limit=1000)}
        )
        return model_metadata(name, [str(v) for v in versions], inputs, outputs)

    # -- inference -------------------------------------------------------------------
    def infer(self, name: str, version: int | None, request: InferRequest) -> InferResponse:
        """Run one OIP request; a log row is written whether it succeeds or fails."""
        start = time.perf_counter()
        record: ModelRecord | None = None
        # Rows inferred: counted once the inputs are decoded, never from a refused
        # request's claimed shape (a 400 for [10**8, 4] would add 10**8 to the figures).
        rows = 0
        try:
            record, loaded = self._serving(name, version)
            names = self._output_names(request, loaded)
            feeds = decode_inputs(request, loaded.input_specs, self.max_elements, self.pool)
            rows = _batch_rows(feeds, request.inputs[0].name)
            try:
                with telemetry.onnx_run(name, record.version):
                    values = self.batching.run(
                        record.id,
                        f"{name} version {record.version}",
                        record.metadata,
                        loaded,
                        names,
                        feeds,
                        rows,
                    )
            finally:
                feeds.release()
            outputs = encode_outputs(names, values)
        except Exception as exc:
            log_inference(self.log, name, version, record, start, rows, None, exc)
            raise
        confidence = first_confidence(outputs)
        mean = sum(confidence) / len(confidence) if confidence else None
        log_inference(self.log, name, version, record, start, rows, mean, None, confidence)
        return built(
            InferResponse,
            {
                "model_name": name,
                "model_version": str(record.version),
                "id": request.id or _request_id(),
                "parameters": None if confidence is None else {"confidence": confidence},
                "outputs": outputs,
            },
        )

    @staticmethod
    def _output_names(request: InferRequest, loaded: LoadedSession) -> list[str]:
        available = loaded.output_names
        if not request.outputs:
            return available
        names = []
        for out in request.outputs:
            if out.name not in available:
                raise InferenceInputError(
                    f"output {out.name!r} is not an output of this model; it has "
                    f"{', '.join(repr(n) for n in available)}",
                    "outputs",
                )
            if out.name not in names:
                names.append(out.name)
        return names


def log_inference(
    repository: InferenceLogRepository,
    name: str,
    version: int | None,
    record: ModelRecord | None,
    start: float,
    rows: int,
    confidence: float | None,
    failure: Exception | None,
    scores: list[float] | None = None,
) -> None:
    """One call's metrics (``record_inference``) and its inference_log row, queued: the
    version that ran (``record``), else the ``version`` asked; the time since ``start``
    (``time.perf_counter()``); ``rows`` served; what failed it, if anything (a model
    error's reason, else the exception's type and message). A failed write is logged,
    not raised."""
    error = None
    if failure is not None:
        error = (
            failure.reason
            if isinstance(failure, ModelError)
            else f"{type(failure).__name__}: {failure}"
        )
    latency_ms = (time.perf_counter() - start) * 1000.0
    model_version = record.version if record else version
    record_inference(name, model_version, latency_ms, error is None, scores)
    row = (  # an InferenceRecord's fields, as a tuple: no object per call
        record.id if record else None,
        name,
        model_version,
        latency_ms,
        rows,
        confidence,
        "failed" if error else "succeeded",
        error[:1000] if error else None,
        time.time_ns(),
    )
    try:
        repository.add_row(row)
    except Exception:  # the log is analytics: never turn a served call into an error
        log.warning("inference log write failed for model %s", name, exc_info=True)


def record_inference(
    name: str,
    version: int | None,
    latency_ms: float,
    succeeded: bool,
    scores: list[float] | None = None,
) -> None:
    """The inference metrics for one call: duration, the request (and failure) counts,
    and each row's confidence for classifier outputs."""
    outcome = "succeeded" if succeeded else "failed"
    attributes: dict[str, Any] = {"model": name, "outcome": outcome}
    if version is not None:
        attributes["version"] = version
    telemetry.record("hartonomous.inference.duration", latency_ms, attributes)
    telemetry.record("hartonomous.inference.requests", 1, {"model": name, "outcome": outcome})
    if not succeeded:
        telemetry.record("hartonomous.inference.failures", 1, {"model": name})
    if scores:
        per_row = {"model": name} if version is None else {"model": name, "version": version}
        for score in scores:
            telemetry.record("hartonomous.inference.confidence", score, per_row)


def _request_id() -> str:
    """A random UUID (version 4) as 32 hex digits, as ``uuid.uuid4().hex`` gives it,
    without building a UUID object."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # RFC 4122 variant
    return b.hex()


def _batch_rows(feeds: Mapping[str, np.ndarray], first: str) -> int:
    """The decoded first input's leading dimension (1 for a scalar)."""
    shape = feeds[first].shape if first in feeds else ()
    return int(shape[0]) if shape else 1


@cache
def model_files() -> ModelFileCache:
    """The bounded local model cache, filled from Blob Storage and sha256-verified."""
    from shared.settings import get_settings

    s = get_settings()
    return ModelFileCache(s.data_dir / "model-cache", s.model_cache_bytes)


def fetch_model_file(record: ModelRecord) -> Path:
    """A local path to a registered model's bytes (downloaded once, then cached)."""
    from shared.registry.downloads import model_downloads

    download = model_downloads().download
    return model_files().path_for(record.sha256, lambda dest: download(record, dest))


@cache
def sessions() -> SessionCache:
    """The process's one cache of warmed onnxruntime sessions: inference and text
    embedding both load through it, so MAX_SESSIONS bounds every loaded model."""
    from shared.settings import get_settings

    return SessionCache(get_settings().max_sessions)


@cache
def inference_service() -> InferenceService:
    """Open Inference Protocol service: cached files, warmed sessions, inference log."""
    from shared.db.app import database
    from shared.registry.downloads import model_downloads
    from shared.vectors.pool import default_pool

    return InferenceService(
        ModelRepository(database()),
        InferenceLogRepository(database()),
        model_files(),
        sessions(),
        model_downloads().download,
        default_pool(),
        batching=limits_from_settings(),
    )
