"""Job payloads too big for a queue message travel as a blob; the message carries a
reference.

A queue message holds at most 64 KiB, and an inline batch of 200 vectors of 384
floats is already 1.5 MB of JSON. Such a payload is written to the ingest container and
the message (and the job row, so a retry sends the same) carries
`{"$blob": "<name>", "bytes": n, "sha256": "<digest>"}` instead (the digest lets a
resubmission be compared with it after the blob is gone). The runner reads it back
before the handler sees it, so handlers never know the difference.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
from typing import Any
from xml.sax.saxutils import escape

from shared import json_input
from shared.storage.blob_store import BlobModelStore

#: What a message may carry inline: the 64 KiB limit less room for the XML envelope.
MAX_INLINE_BYTES = 48 * 1024
#: The largest payload a reference may point at (requests are smaller still).
MAX_PAYLOAD_BYTES = 256 * 1024 * 1024
REF = "$blob"
#: The names ``PayloadStore.put`` gives; a reference to anything else is refused.
NAME = re.compile(r"job-payload-[0-9a-f]{32}\.json")


def message_bytes(text: str) -> int:
    """The size the queue service counts: the text as it travels inside XML."""
    return len(escape(text).encode("utf-8"))


def is_reference(payload: Any) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get(REF), str)


def digest(payload: Any) -> str:
    """SHA-256 of the payload's JSON with sorted keys: equal payloads, equal digests."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def same_payload(stored: Any, payload: Any) -> bool:
    """Whether a job row's payload (inline, or a reference with its digest) is `payload`."""
    if is_reference(stored):
        return stored.get("sha256") == digest(payload)
    return bool(stored == payload)


class PayloadStore:
    """Big payloads as JSON blobs in the ingest container."""

    def __init__(self, store: BlobModelStore) -> None:
        self.store = store

    def put(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Store `payload`; returns the reference that replaces it."""
        data = json.dumps(payload, separators=(",", ":")).encode()
        name = f"job-payload-{uuid.uuid4().hex}.json"  # what NAME accepts
        self.store.upload(name, io.BytesIO(data), content_type="application/json")
        return {REF: name, "bytes": len(data), "sha256": digest(payload)}

    def load(self, reference: dict[str, Any]) -> Any:
        """The payload a reference points at (a missing blob raises ResourceNotFoundError).

        A reference arrives in a queue message anyone with the queue can write: only a
        name ``put`` makes is read (never another blob of the container, or a path out
        of it); anything else is a LookupError the runner records as malformed."""
        name = reference[REF]
        if not NAME.fullmatch(name):
            raise LookupError(f"{name!r} is not a payload blob this app wrote ({NAME.pattern})")
        try:
            return json_input.loads(self.store.read_bytes(name, MAX_PAYLOAD_BYTES))
        except json_input.JsonInputError as exc:
            raise LookupError(f"the payload blob {name!r} is not JSON: {exc}") from None

    def delete(self, reference: dict[str, Any]) -> None:
        """Once the job succeeded: no retry will read it again."""
        self.store.delete(reference[REF])
