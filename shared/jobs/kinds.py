"""Job kinds and job statuses, declared once.

The queue message schema, the HTTP schemas (and so the OpenAPI document), the job
repository and the runner all derive their names from these two enums, so a new kind
or status is one line here (plus, for a kind, its payload shape and handler, registered
in ``function_app.py`` through ``shared.jobs.handlers``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal


class JobKind(StrEnum):
    """What a job does; each kind has one payload class and one handler."""

    MODEL = "model"
    EMBEDDINGS = "embeddings"
    EMBED_TEXT = "embed_text"


class JobStatus(StrEnum):
    """Where a job is: queued -> running -> succeeded | failed (failed -> queued on retry)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


#: The kind recorded for a malformed message whose kind cannot be read; never runs.
UNKNOWN_KIND: Final = "unknown"

KINDS: Final = tuple(JobKind)

# The same names as Literal types, for pydantic fields (validation messages list them and
# the OpenAPI document shows them as an enum of plain strings).
KindName = Literal[tuple(k.value for k in JobKind)]  # type: ignore[valid-type]
StatusName = Literal[tuple(s.value for s in JobStatus)]  # type: ignore[valid-type]
RecordedKindName = Literal[(*(k.value for k in JobKind), UNKNOWN_KIND)]  # type: ignore[valid-type]
