"""The embedding jobs: store a batch of vectors (inline, ``.npy`` or ``.jsonl`` from the
ingest container), and embed texts with a registered model and store the vectors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import numpy as np

from shared import json_input
from shared.embeddings.npy_reader import NpyFormatError, NpyRows
from shared.embeddings.repository import EmbeddingDimensionError
from shared.embeddings.service import EmbeddingStore
from shared.embeddings.shapes import EmbeddingsPayload, EmbedTextPayload
from shared.errors import InvalidInputError
from shared.jobs.runner import PermanentJobError
from shared.storage.blob_store import BlobModelStore
from shared.storage.prefetch import prefetch
from shared.vectors.errors import VectorError

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000  # rows per transaction when storing embeddings


def _missing_blob(exc: Exception) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError)


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
                return self._store(payload, ids, matrix, [i.metadata for i in payload.items])
            assert payload.blob is not None
            if payload.blob.endswith(".npy"):
                return self._from_npy(payload)
            return self._from_jsonl(payload)
        except (VectorError, EmbeddingDimensionError) as exc:  # bad vectors, a set's dimension
            raise PermanentJobError(exc.message) from exc
        except InvalidInputError as exc:  # metadata a row cannot hold
            raise PermanentJobError(exc.message) from exc
        except UnicodeDecodeError as exc:  # a .jsonl line that is not UTF-8
            raise PermanentJobError(f"{payload.blob}: {exc}") from exc
        except Exception as exc:
            if _missing_blob(exc):
                raise PermanentJobError(f"blob not found in the ingest container: {exc}") from exc
            raise

    def _store(
        self,
        payload: EmbeddingsPayload,
        ids: list[str],
        matrix: np.ndarray,
        metadata: list[Any] | None = None,
        offset: int = 0,
    ) -> dict:
        inserted = updated = 0
        for start in range(0, len(ids), CHUNK_ROWS):
            counts = self.store.upsert_array(
                payload.model_id,
                payload.embedding_type,
                ids[start : start + CHUNK_ROWS],
                matrix[start : start + CHUNK_ROWS],
                field=f"rows[{offset + start}:]",
                metadata=None if metadata is None else metadata[start : start + CHUNK_ROWS],
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
        metadata: list[Any] = []
        total = {"rows": 0, "inserted": 0, "updated": 0}
        with contextlib.closing(prefetch(self.data.chunks(payload.blob))) as chunks:
            for n, line in enumerate(_lines(chunks), start=1):
                if not line.strip():
                    continue
                try:
                    item = json_input.loads(line)
                    ids.append(str(item["entity_id"]))
                    rows.append(item["vector"])
                    metadata.append(_line_metadata(item.get("metadata"), payload.blob, n))
                except (json_input.JsonInputError, KeyError, TypeError, AttributeError) as exc:
                    raise PermanentJobError(
                        f'{payload.blob} line {n}: expected {{"entity_id", "vector"}} ({exc})'
                    ) from exc
                if len(ids) >= CHUNK_ROWS:
                    _add(total, self._store(payload, ids, _matrix(rows, f"line {n}"), metadata))
                    ids, rows, metadata = [], [], []
        if ids:
            _add(total, self._store(payload, ids, _matrix(rows, payload.blob), metadata))
        return total


def _line_metadata(value: Any, blob: str | None, line: int) -> dict[str, Any] | None:
    """A ``.jsonl`` line's optional ``"metadata"``, checked as ``PUT`` checks it."""
    if value is None:
        return None
    from shared.search.metadata_filter import check_metadata

    try:
        return check_metadata(value, "metadata")
    except InvalidInputError as exc:
        raise PermanentJobError(f"{blob} line {line}: {exc.message}") from exc


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
        from shared.inference.embedder import EmbeddingInputError
        from shared.registry.errors import ModelError

        try:
            embedder = self.embedder_for(payload.model)
        except ModelError as exc:
            raise PermanentJobError(exc.reason) from exc
        try:
            vectors = embedder.embed(payload.texts)
        except (EmbeddingInputError, ModelError) as exc:  # a text it cannot encode, a bad model
            raise PermanentJobError(exc.message) from exc
        counts = self.store.upsert_array(
            payload.model, payload.embedding_type, payload.entity_ids, vectors
        )
        return {"rows": len(payload.texts), "inserted": counts.inserted, "updated": counts.updated}


#: An ``.npy`` upload's id list is read whole; this bounds it.
MAX_IDS_BYTES = 256 * 1024**2


@cache
def embeddings_ingestion() -> EmbeddingsIngestion:
    from shared.embeddings.service import embedding_store
    from shared.jobs.service import ingest_container

    return EmbeddingsIngestion(embedding_store(), ingest_container(), max_ids_bytes=MAX_IDS_BYTES)


@cache
def text_embedding_job() -> TextEmbeddingJob:
    from shared.embeddings.service import embedding_store
    from shared.inference.text_models import text_models

    return TextEmbeddingJob(embedding_store(), text_models().get)
