"""Queue message types and host.json `messageEncoding`, shared by the trigger and outputs.

"base64" (Azure's default): message text is base64 of the body, decoded before the
function sees it; a body that is not base64 fails the invocation (and so ends in the
poison queue, as in Azure). "none": the text is the body.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage as _QueueMessageWithProperties


class HostQueueMessage(_QueueMessageWithProperties):
    """func.QueueMessage whose dequeue_count, times and pop_receipt carry real values.

    (`func.QueueMessage` itself returns None for them; the worker builds this subclass.)
    """


def decode_body(text: str, encoding: str) -> bytes:
    """Message text from the queue → the body the function sees."""
    if encoding == "none":
        return text.encode("utf-8")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ValueError(
            'queue message is not valid base64 (host.json messageEncoding is "base64")'
        ) from exc


def encode_body(body: str | bytes, encoding: str) -> str:
    """A body the function produced → message text to send."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if encoding == "none":
        return raw.decode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def to_function_message(sdk_message: Any, body: bytes) -> HostQueueMessage:
    """An azure-storage-queue message (already decoded) → what the function receives."""
    return HostQueueMessage(
        id=sdk_message.id,
        body=body,
        dequeue_count=sdk_message.dequeue_count,
        expiration_time=sdk_message.expires_on,
        insertion_time=sdk_message.inserted_on,
        time_next_visible=sdk_message.next_visible_on,
        pop_receipt=sdk_message.pop_receipt,
    )


def message_bodies(value: Any) -> list[bytes]:
    """A queue output value (str, bytes, QueueMessage or a list of them) → bodies."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.encode("utf-8")]
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    if isinstance(value, list | tuple):
        bodies: list[bytes] = []
        for item in value:
            if isinstance(item, list | tuple):
                raise TypeError("queue output: nested lists are not supported")
            bodies.extend(message_bodies(item))
        return bodies
    raise TypeError(
        f"queue output takes str, bytes, func.QueueMessage or a list of them, "
        f"not {type(value).__name__}"
    )


def queue_binding_data(message: HostQueueMessage) -> dict[str, Any]:
    """Binding-expression values of a queue trigger (`{queueTrigger}`, `{id}`, JSON keys)."""
    body = message.get_body()
    text = body.decode("utf-8", errors="replace")
    data: dict[str, Any] = {}
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's stack
        parsed = None
    if isinstance(parsed, dict):
        data.update({str(k): v for k, v in parsed.items() if not isinstance(v, dict | list)})
    data.update(
        {
            "queueTrigger": text,
            "id": message.id,
            "dequeueCount": message.dequeue_count,
            "popReceipt": message.pop_receipt,
        }
    )
    return data
