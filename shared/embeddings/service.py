"""Embedding writes and reads with wire-format decoding and limits applied."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.batching import Batchers, BatchLimits, limits_from_settings
from shared.embeddings.repository import (
    EmbeddingRepository,
    EmbeddingRow,
    ListedRow,
    UpsertCounts,
)
from shared.errors import InvalidInputError, NotFoundError
from shared.inference.embedder import Tokens
from shared.settings import get_settings
from shared.vectors import codec

if TYPE_CHECKING:
    from shared.inference.embedder import TokenLimit
    from shared.inference.text_models import TextModels
    from shared.registry.repository import ModelRecord
    from shared.search.metadata_filter import MetadataFilter

from shared.vectors.errors import (
    DimensionMismatchError,
    LimitExceededError,
    NonFiniteError,
    VectorFormatError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_dim: int
    max_rows: int


def to_bytes(vector: np.ndarray) -> bytes:
    """The SQL storage format: float32 little-endian."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


class EmbeddingStore:
    def __init__(
        self,
        repo: EmbeddingRepository,
        limits: Limits,
        forget_snapshot: Callable[[str, str], None] | None = None,
    ) -> None:
        """``forget_snapshot(model_id, embedding_type)`` removes a set's search snapshot
        once rows of it are deleted (``SnapshotStore.forget``)."""
        self.repo = repo
        self.limits = limits
        self.forget_snapshot = forget_snapshot

    def upsert(
        self,
        model_id: str,
        embedding_type: str,
        items: list[tuple[str, Any]],
        metadata: Sequence[Any] | None = None,
    ) -> tuple[int, UpsertCounts]:
        """Decode and store `(entity_id, wire vector)` pairs in one transaction, with
        `metadata` (one object or None per item, as given: checked here, every item
        before any is written).

        Returns (dimension, counts)."""
        if len(items) > self.limits.max_rows:
            raise LimitExceededError(
                "items", f"{len(items)} items; the limit is {self.limits.max_rows} per request"
            )
        rows: list[tuple[str, bytes]] = []
        dim = 0
        for i, (entity_id, wire) in enumerate(items):
            vec = codec.decode_vector(wire, f"items[{i}].vector", max_dim=self.limits.max_dim)
            if i == 0:
                dim = int(vec.shape[0])
            elif vec.shape[0] != dim:
                raise DimensionMismatchError.between(
                    f"items[{i}].vector", int(vec.shape[0]), "items[0].vector", dim
                )
            rows.append((entity_id, to_bytes(vec)))
        checked = _checked(metadata, "items[{}].metadata")
        return dim, self.repo.upsert_many(model_id, embedding_type, rows, checked)

    def upsert_array(
        self,
        model_id: str,
        embedding_type: str,
        ids: list[str],
        matrix: np.ndarray,
        field: str = "vectors",
        metadata: Sequence[Any] | None = None,
    ) -> UpsertCounts:
        """Store rows of an (n, d) matrix under `ids` in one transaction (jobs, embedders),
        with `metadata` (one object or None per row; checked, the error naming
        ``metadata[i]``)."""
        if matrix.ndim != 2 or matrix.shape[0] != len(ids):
            raise VectorFormatError(
                field, f"expected {len(ids)} rows, got an array of shape {list(matrix.shape)}"
            )
        if matrix.shape[1] > self.limits.max_dim:
            raise LimitExceededError(
                field, f"dimension {matrix.shape[1]} exceeds the limit {self.limits.max_dim}"
            )
        rows32 = np.ascontiguousarray(matrix, dtype="<f4")
        if not np.isfinite(rows32).all():
            bad = int(np.argwhere(~np.isfinite(rows32))[0][0])
            raise NonFiniteError(f"{field}[{bad}]", "NaN or Inf is not a valid vector component")
        rows = [(e, rows32[i].tobytes()) for i, e in enumerate(ids)]
        checked = _checked(metadata, "metadata[{}]")
        return self.repo.upsert_many(model_id, embedding_type, rows, checked)

    def set_metadata(
        self, entity_id: str, model_id: str, embedding_type: str, metadata: Any
    ) -> dict[str, Any] | None:
        """Replace one row's metadata, the vector untouched (None clears it); the
        metadata as stored. NotFoundError when the set has no such row."""
        from shared.search.metadata_filter import check_metadata

        checked = None if metadata is None else check_metadata(metadata, "metadata")
        if not self.repo.set_metadata(entity_id, model_id, embedding_type, checked):
            raise NotFoundError(
                f"no embedding for entity {entity_id!r} in model {model_id!r} "
                f"type {embedding_type!r}"
            )
        return checked

    def get(
        self, entity_id: str, model_id: str | None, embedding_type: str | None
    ) -> list[EmbeddingRow]:
        """The entity's rows (one per set it is in); NotFoundError when there are none."""
        rows = self.repo.get(entity_id, model_id=model_id, embedding_type=embedding_type)
        if not rows:
            raise NotFoundError(f"no embeddings for entity {entity_id!r}")
        return rows

    def delete(self, entity_id: str, model_id: str | None, embedding_type: str | None) -> int:
        """Delete the entity's rows, then any search snapshot that still holds them: a
        deleted vector must not survive in a copy. SQL is the truth, so a snapshot that
        cannot be removed now only logs (it is stale, and goes when the set next loads)."""
        found = self.get(entity_id, model_id, embedding_type)
        deleted = self.repo.delete(entity_id, model_id=model_id, embedding_type=embedding_type)
        if deleted and self.forget_snapshot is not None:
            for key in sorted({(r.model_id, r.embedding_type) for r in found}):
                try:
                    self.forget_snapshot(*key)
                except Exception:
                    log.warning("search snapshot of %s/%s not removed yet", *key, exc_info=True)
        return deleted

    def list_rows(
        self,
        model_id: str,
        embedding_type: str,
        filter_value: Any,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[ListedRow], str | None]:
        """One page of the set's rows matching ``filter_value`` (a filter as JSON, None
        for all), ordered by row id, and the cursor of the next page (None at the end).
        A page that comes back full may be followed by an empty one."""
        flt = _filter(filter_value)
        after = decode_cursor(cursor) if cursor else 0
        rows = self.repo.list_page(model_id, embedding_type, flt, after, limit)
        return rows, encode_cursor(rows[-1].id) if len(rows) == limit else None

    def count(self, model_id: str, embedding_type: str, filter_value: Any) -> int:
        """Rows of the set that ``filter_value`` (None: all) matches."""
        return self.repo.count_matching(model_id, embedding_type, _filter(filter_value))

    def delete_matching(self, model_id: str, embedding_type: str, filter_value: Any) -> int:
        """Delete the set's rows ``filter_value`` matches (``{}``: all of them), then the
        set's search snapshot, as ``delete`` does."""
        if filter_value is None:
            raise InvalidInputError(
                "filter: required; {} deletes every row of the set", field="filter"
            )
        deleted = self.repo.delete_matching(model_id, embedding_type, _filter(filter_value))
        if deleted and self.forget_snapshot is not None:
            try:
                self.forget_snapshot(model_id, embedding_type)
            except Exception:
                log.warning(
                    "search snapshot of %s/%s not removed yet",
                    model_id,
                    embedding_type,
                    exc_info=True,
                )
        return deleted


_CURSOR_PREFIX = b"id:"


def encode_cursor(row_id: int) -> str:
    """An opaque cursor: the last listed row's id, base64url without padding."""
    return base64.urlsafe_b64encode(_CURSOR_PREFIX + str(row_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The row id in a cursor from ``encode_cursor``; InvalidInputError naming
    ``cursor`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        digits = raw[len(_CURSOR_PREFIX) :]
        if raw.startswith(_CURSOR_PREFIX) and digits.isdigit() and len(digits) <= 18:
            return int(digits)
    except (ValueError, TypeError):
        pass
    raise InvalidInputError(
        "cursor: not a cursor this API returned (pass next_cursor as given)", field="cursor"
    )


def _filter(value: Any) -> MetadataFilter:
    from shared.search.metadata_filter import parse_filter

    return parse_filter({} if value is None else value, "filter")


def _checked(metadata: Sequence[Any] | None, field: str) -> list[dict[str, Any] | None] | None:
    """Each item's metadata checked (``field`` formatted with its index), None kept."""
    if metadata is None:
        return None
    from shared.search.metadata_filter import check_metadata

    return [
        None if m is None else check_metadata(m, field.format(i)) for i, m in enumerate(metadata)
    ]


@cache
def embedding_store() -> EmbeddingStore:
    """Embedding writes and reads with the configured limits; deletes also remove the
    set's search snapshot."""
    from shared.db.app import database
    from shared.search.service import snapshot_store

    s = get_settings()
    return EmbeddingStore(
        EmbeddingRepository(database()),
        Limits(s.max_vector_dim, s.max_batch_rows),
        forget_snapshot=snapshot_store().forget,
    )


@dataclass(frozen=True)
class TextVectors:
    """Texts embedded by one model version, and what storing them did. ``tokens`` are
    each text's tokens before any cut (special tokens included, padding not); a text
    with more than ``max_tokens`` was cut to that many (``truncated``)."""

    model_version: int
    vectors: np.ndarray
    stored: UpsertCounts | None
    tokens: Sequence[int] = ()
    max_tokens: int = 0

    @property
    def truncated(self) -> list[int]:
        """Indices of the texts cut to the model's limit."""
        return [i for i, n in enumerate(self.tokens) if n > self.max_tokens]


class TextEmbeddings:
    """Embed texts with a registered text model, and optionally store the vectors under
    the model's name (the ``model_id`` of their set)."""

    def __init__(
        self, models: TextModels, store: EmbeddingStore, batching: BatchLimits | None = None
    ) -> None:
        """`batching`: concurrent calls of one model version are embedded as one batch of
        at most its max size in texts (None: each alone, unless the model's registration
        sets its own ``batch_max_size``)."""
        self.models = models
        self.store = store
        self.limits = batching or BatchLimits(1, 0.0, 1)
        self.batchers: Batchers[_Tokens, np.ndarray] = Batchers("text-embedding", self._run_batch)

    def embed(
        self,
        model: str,
        texts: list[str],
        store_as: tuple[str, list[str]] | None = None,
        *,
        truncate: bool = True,
        field: str = "texts",
    ) -> TextVectors:
        """`store_as` is (embedding_type, entity_ids), one id per text. A text over the
        model's token limit is cut to it, or with ``truncate=False`` refused with a 400
        naming ``field[i]``. Each caller's texts are tokenized on its own thread, so a
        refusal (or a text that is not text) fails that caller only, before any batch."""
        record = self.models.record(model)  # 404 / 409 naming the field "model"
        embedder = self.models.embedder(record)
        tokens = embedder.tokenize(texts, truncate=truncate, field=field)
        limits = self.limits.for_model(record.metadata)
        if not limits.enabled or len(texts) >= limits.max_size:  # a batch already
            vectors = embedder.run(tokens)
        else:
            vectors = self.batchers.get(limits).submit(
                record.id, _Tokens(embedder, tokens), len(texts)
            )
        stored = None
        if store_as is not None:
            embedding_type, entity_ids = store_as
            stored = self.store.upsert_array(model, embedding_type, entity_ids, vectors)
        return TextVectors(record.version, vectors, stored, tokens.counts, tokens.limit)

    def text_models(self) -> list[ModelRecord]:
        """The newest ready version of each model that can embed text."""
        return self.models.available()

    def text_model(self, name: str) -> tuple[ModelRecord, TokenLimit]:
        """The newest ready version of ``name`` and its token limit: 404 when it is not
        registered or takes no ``input_ids``, 409 when it is not ready or has no tokenizer."""
        from shared.registry.errors import ModelNotFoundError

        record = self.models.record(name)
        inputs = (record.metadata or {}).get("inputs") or []
        if not any(spec.get("name") == "input_ids" for spec in inputs):
            raise ModelNotFoundError(f"model {name!r} is not a text model", field="model")
        return record, self.models.tokenizer(record).limit

    @staticmethod
    def _run_batch(key: Hashable, items: Sequence[_Tokens]) -> list[np.ndarray]:
        """Every caller's texts in one call of the model (one version: one embedder),
        split back per caller. Padding to a longer neighbour moves a vector by float32
        rounding only: the attention mask keeps the padding out of the pooling."""
        vectors = items[0].embedder.run(Tokens.join([item.tokens for item in items]))
        bounds = np.cumsum([0, *(len(item.tokens.ids) for item in items)])
        return [vectors[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass(frozen=True)
class _Tokens:
    embedder: Any
    tokens: Tokens


@cache
def text_embeddings() -> TextEmbeddings:
    from shared.inference.text_models import text_models

    return TextEmbeddings(text_models(), embedding_store(), limits_from_settings())
