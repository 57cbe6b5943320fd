"""What each job kind does. Handlers get their collaborators injected, so tests run
them on real Azurite and SQLite without the Functions runtime."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shared import json_input
from shared.db.repos.models import ModelRecord, ModelRepository
from shared.jobs.messages import EmbeddingsPayload, EmbedTextPayload, ModelPayload
from shared.jobs.runner import PermanentJobError
from shared.models.status import ModelStatus
from shared.search.store import EmbeddingStore
from shared.storage.blob_store import BlobModelStore
from shared.storage.npy_reader import NpyFormatError, NpyRows
from shared.storage.prefetch import prefetch
from shared.vectors.errors import VectorError

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000  # rows per transaction when storing embeddings


def _missing_blob(exc: Exception) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    from shared.models.errors import ModelBlobMissingError

    return isinstance(exc, ResourceNotFoundError | ModelBlobMissingError)


class ModelIngestion:
    """Download a registered model, verify it, record its tensors and metadata."""

    def __init__(
        self,
        models: ModelRepository,
        fetch_model_file: Callable[[ModelRecord], Path],
        max_bytes: int | None = None,
    ) -> None:
        self.models = models
        self.fetch = fetch_model_file
        self.max_bytes = max_bytes

    def __call__(self, job_id: str, payload: ModelPayload) -> dict[str, Any]:
        from shared.models.errors import ModelValidationError
        from shared.models.inspect import inspect_model
        from shared.models.sessions import check_loadable

        record = self.models.get(payload.model_id)
        if record is None:
            raise PermanentJobError(f"model {payload.model_id!r} is not registered")
        size = record.size_bytes or 0
        if self.max_bytes is not None and size > self.max_bytes:
            # Blobs written straight to the container (or through an upload URL) meet
            # the same limit as POST /api/models, here, before any download.
            reason = (
                f"the model is {size} bytes, over the limit of {self.max_bytes} (MAX_UPLOAD_BYTES)"
            )
            self.models.set_status(record.id, ModelStatus.FAILED, error=reason)
            raise PermanentJobError(reason)
        self.models.set_status(record.id, ModelStatus.INGESTING)
        try:
            path = self.fetch(record)
        except Exception as exc:
            if _missing_blob(exc):
                from shared.models.errors import ModelBlobMissingError

                reason = (
                    exc.reason
                    if isinstance(exc, ModelBlobMissingError)
                    else f"the blob {record.blob_name!r} no longer exists"
                )
                self.models.set_status(record.id, ModelStatus.FAILED, error=reason)
                raise PermanentJobError(reason) from exc
            raise
        try:
            info = inspect_model(path)
            check_loadable(path)
        except ModelValidationError as exc:
            self.models.set_status(record.id, ModelStatus.FAILED, error=exc.reason)
            raise PermanentJobError(exc.reason) from exc
        problem = _embedding_output_problem(record.metadata.get("embedding_output"), info)
        if problem:
            self.models.set_status(record.id, ModelStatus.FAILED, error=problem)
            raise PermanentJobError(problem)
        self.models.replace_tensors(record.id, info.initializers)
        metadata = {**record.metadata, **info.to_metadata()}
        self.models.set_status(record.id, ModelStatus.READY, metadata=metadata)
        return {
            "model_id": record.id,
            "name": record.name,
            "version": record.version,
            "inputs": len(info.inputs),
            "outputs": len(info.outputs),
            "parameters": info.parameter_count,
            "tensors": len(info.initializers),
        }

    def give_up(self, payload: ModelPayload, reason: str) -> None:
        """The last attempt failed: the model says why instead of staying 'ingesting'."""
        self.models.set_status(payload.model_id, ModelStatus.FAILED, error=reason)


def _embedding_output_problem(name: str | None, info: Any) -> str | None:
    """A registration that names its embedding output must name a usable one."""
    if not name:
        return None
    outputs = {o.name: o for o in info.outputs}
    out = outputs.get(name)
    if out is None:
        return f"embedding_output {name!r} is not an output of the model; it has " + ", ".join(
            repr(n) for n in outputs
        )
    if (
        out.datatype not in ("FP16", "FP32", "FP64")
        or out.shape is None
        or len(out.shape) not in (2, 3)
    ):
        return (
            f"embedding_output {name!r} is {out.datatype} {list(out.shape or [])}: a text "
            "embedding must be float [batch, hidden] or [batch, sequence, hidden]"
        )
    return None


class EmbeddingsIngestion:
    """Store a batch of vectors from the message or from a blob, in transactions."""

    def __init__(self, store: EmbeddingStore, data: BlobModelStore, max_ids_bytes: int) -> None:
        self.store = store
        self.data = data
        self.max_ids_bytes = max_ids_bytes

    def __call__(self, job_id: str, payload: EmbeddingsPayload) -> dict[str, Any]:
        try:
            if payload.items is not None:
                ids = [i.entity_id for i in payload.items]
                matrix = _matrix([i.vector for i in payload.items])
                return self._store(payload, ids, matrix)
            assert payload.blob is not None
            if payload.blob.endswith(".npy"):
                return self._from_npy(payload)
            return self._from_jsonl(payload)
        except VectorError as exc:
            raise PermanentJobError(exc.message) from exc
        except ValueError as exc:  # dimension conflicts with the stored set, bad files
            raise PermanentJobError(str(exc)) from exc
        except Exception as exc:
            if _missing_blob(exc):
                raise PermanentJobError(f"blob not found in the ingest container: {exc}") from exc
            raise

    def _store(
        self, payload: EmbeddingsPayload, ids: list[str], matrix: np.ndarray, offset: int = 0
    ) -> dict:
        inserted = updated = 0
        for start in range(0, len(ids), CHUNK_ROWS):
            counts = self.store.upsert_array(
                payload.model_id,
                payload.embedding_type,
                ids[start : start + CHUNK_ROWS],
                matrix[start : start + CHUNK_ROWS],
                field=f"rows[{offset + start}:]",
            )
            inserted += counts.inserted
            updated += counts.updated
        return {"rows": len(ids), "inserted": inserted, "updated": updated}

    def _from_npy(self, payload: EmbeddingsPayload) -> dict:
        """Rows are stored block by block as the download delivers them: no temp file,
        memory bounded by a few blocks, whatever the size of the batch."""
        assert payload.blob is not None
        ids_blob = payload.ids_blob or payload.blob[: -len(".npy")] + ".json"
        try:
            ids = json_input.loads(self.data.read_bytes(ids_blob, self.max_ids_bytes))
        except json_input.JsonInputError as exc:
            raise PermanentJobError(f"{ids_blob}: not JSON: {exc}") from None
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise PermanentJobError(f"{ids_blob}: expected a JSON list of non-empty strings")
        total = {"rows": 0, "inserted": 0, "updated": 0}
        with contextlib.closing(prefetch(self.data.chunks(payload.blob))) as chunks:
            try:
                npy = NpyRows(chunks)
                if npy.shape[0] != len(ids):
                    raise PermanentJobError(
                        f"{payload.blob} has {npy.shape[0]} rows but {ids_blob} has {len(ids)} ids"
                    )
                start = 0
                for block in npy.blocks(CHUNK_ROWS):
                    stop = start + len(block)
                    _add(total, self._store(payload, ids[start:stop], block, offset=start))
                    start = stop
            except NpyFormatError as exc:
                raise PermanentJobError(f"{payload.blob}: {exc}") from exc
        return total

    def _from_jsonl(self, payload: EmbeddingsPayload) -> dict:
        assert payload.blob is not None
        ids: list[str] = []
        rows: list[list[float]] = []
        total = {"rows": 0, "inserted": 0, "updated": 0}
        with contextlib.closing(prefetch(self.data.chunks(payload.blob))) as chunks:
            for n, line in enumerate(_lines(chunks), start=1):
                if not line.strip():
                    continue
                try:
                    item = json_input.loads(line)
                    ids.append(str(item["entity_id"]))
                    rows.append(item["vector"])
                except (json_input.JsonInputError, KeyError, TypeError) as exc:
                    raise PermanentJobError(
                        f'{payload.blob} line {n}: expected {{"entity_id", "vector"}} ({exc})'
                    ) from exc
                if len(ids) >= CHUNK_ROWS:
                    _add(total, self._store(payload, ids, _matrix(rows, f"line {n}")))
                    ids, rows = [], []
        if ids:
            _add(total, self._store(payload, ids, _matrix(rows, payload.blob)))
        return total


def _add(total: dict, part: dict) -> None:
    for key in total:
        total[key] += part[key]


def _matrix(rows: list[Any], where: str = "items") -> np.ndarray:
    try:
        return np.asarray(rows, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise PermanentJobError(f"{where}: vectors must be equal-length number lists") from exc


MAX_LINE_BYTES = 4 * 1024 * 1024  # one .jsonl record; a 4096-d vector as text is ~100 KB


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Lines of a streamed blob, never holding more than one line and one chunk."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            yield line.decode("utf-8")
        if len(buf) > MAX_LINE_BYTES:
            raise PermanentJobError(f"a .jsonl line is longer than {MAX_LINE_BYTES} bytes")
    if buf:
        yield buf.decode("utf-8")


class TextEmbeddingJob:
    """Embed texts with a registered embedding model and store the vectors."""

    def __init__(self, store: EmbeddingStore, embedder_for: Callable[[str], Any]) -> None:
        self.store = store
        self.embedder_for = embedder_for

    def __call__(self, job_id: str, payload: EmbedTextPayload) -> dict[str, Any]:
        from shared.models.errors import ModelError

        try:
            embedder = self.embedder_for(payload.model)
        except ModelError as exc:
            raise PermanentJobError(exc.reason) from exc
        try:
            vectors = embedder.embed(payload.texts)
        except ValueError as exc:
            raise PermanentJobError(str(exc)) from exc
        counts = self.store.upsert_array(
            payload.model, payload.embedding_type, payload.entity_ids, vectors
        )
        return {"rows": len(payload.texts), "inserted": counts.inserted, "updated": counts.updated}
