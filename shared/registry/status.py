"""Model statuses, declared once: the repository, the ingestion job, the inference
service and the HTTP schemas (and so the OpenAPI document) all derive from this enum."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal


class ModelStatus(StrEnum):
    """registered -> ingesting -> ready | failed (a new upload of the same name is a new row)."""

    REGISTERED = "registered"
    INGESTING = "ingesting"
    READY = "ready"
    FAILED = "failed"


MODEL_STATUSES: Final = tuple(ModelStatus)

#: The same names as a Literal type for pydantic fields (an enum of plain strings).
ModelStatusName = Literal[tuple(s.value for s in ModelStatus)]  # type: ignore[valid-type]
