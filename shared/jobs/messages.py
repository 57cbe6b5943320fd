"""The queue message schema. Plain JSON (host.json sets messageEncoding "none"), so a
message dropped by any tool (az CLI, Storage Explorer, the SDK) runs.

    {"job_id": "...", "kind": "model" | "embeddings" | "embed_text",
     "schema_version": 1, "payload": {...}, "traceparent": "00-<trace>-<span>-01"}

`traceparent` (W3C Trace Context) is optional: queue messages have no headers, so the
sender's trace travels in the body and the job continues it. A message without one (any
tool may drop it), or with one that does not parse, still runs, in a trace of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from shared import json_input
from shared.errors import InvalidInputError
from shared.jobs.handlers import payload_shape
from shared.jobs.kinds import KINDS, KindName

SCHEMA_VERSION = 1
JOB_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
_JOB_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobMessage(_Strict):
    job_id: Annotated[str, Field(min_length=1, max_length=64, pattern=JOB_ID_PATTERN)]
    kind: KindName
    schema_version: int = SCHEMA_VERSION
    payload: dict[str, Any]
    traceparent: Annotated[str, Field(max_length=256)] | None = None

    def to_json(self) -> str:
        return self.model_dump_json(exclude=None if self.traceparent else {"traceparent"})


class MalformedMessageError(InvalidInputError):
    """The message cannot run as sent: retrying will not help."""

    code = "malformed_message"

    def __init__(self, reason: str, job_id: str | None = None, kind: str | None = None) -> None:
        super().__init__(reason)
        self.job_id = job_id
        self.kind = kind


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    loc = f"{prefix}{loc}" if loc else prefix.rstrip(".")
    msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
    msg = "required field is missing" if err["type"] == "missing" else msg
    return f"{loc}: {msg}" if loc else msg


def parse_message(
    body: str | bytes, resolve: Callable[[dict[str, Any]], Any] | None = None
) -> tuple[JobMessage, BaseModel]:
    """The message and its typed payload, or MalformedMessageError saying why.

    `resolve` reads a payload that travels by reference (`{"$blob": ...}`); the message
    keeps the reference, the typed payload is what it points at.
    """
    try:
        data = json_input.loads(body)
    except json_input.JsonInputError as exc:
        raise MalformedMessageError(f"message is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedMessageError("message must be a JSON object")
    # Only a valid id may name the failed row: anything else (a lone surrogate, a path)
    # could not be stored or would be a different job's.
    job_id = data.get("job_id")
    job_id = job_id if isinstance(job_id, str) and _JOB_ID.fullmatch(job_id) else None
    kind = data.get("kind") if isinstance(data.get("kind"), str) else None
    if kind is not None and kind not in KINDS:
        raise MalformedMessageError(
            f"kind: unknown job kind {kind!r}; expected one of {', '.join(KINDS)}", job_id, kind
        )
    version = data.get("schema_version", SCHEMA_VERSION)
    if type(version) is not int or version != SCHEMA_VERSION:  # True == 1.0 == 1 in Python
        raise MalformedMessageError(
            f"schema_version: {version!r} is not supported (this app reads {SCHEMA_VERSION})",
            job_id,
            kind,
        )
    if "traceparent" in data and not isinstance(data["traceparent"], str):
        data = {k: v for k, v in data.items() if k != "traceparent"}  # telemetry only
    try:
        message = JobMessage.model_validate(data)
    except ValidationError as exc:
        raise MalformedMessageError(_first_error(exc), job_id, kind) from None
    raw_payload: Any = message.payload
    if resolve is not None and isinstance(raw_payload.get("$blob"), str):
        try:
            raw_payload = resolve(raw_payload)
        except LookupError as exc:
            raise MalformedMessageError(f"payload: {exc}", job_id, kind) from None
    try:
        payload = payload_shape(message.kind).model_validate(raw_payload)
    except ValidationError as exc:
        raise MalformedMessageError(_first_error(exc, "payload."), job_id, kind) from None
    return message, payload
