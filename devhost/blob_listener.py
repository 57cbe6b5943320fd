"""Blob trigger: find new or changed blobs by scanning the container, fire once per version.

Azurite has no Event Grid, so the container is listed every LOCAL_BLOB_SCAN_INTERVAL_SECONDS
(with the path's literal prefix) and names are matched against the trigger path
(`container/pattern`, e.g. `models/{name}.onnx`), binding the `{placeholders}`. As in
Azure, receipts live in the storage account (container `azure-webjobs-hosts`, blob
`blobreceipts/<host id>/<function>/<etag>/<container>/<blob>`), so a blob fires once per
ETag, also across restarts, and a changed blob fires again. A failing blob is retried on
later scans; after `max_failures` tries its receipt is written and a message goes to the
`webjobs-blobtrigger-poison` queue.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .bindings import blob_argument, blob_argument_kind
from .invocation import Bound, Invoker
from .loader import FunctionSpec
from .otel_sdk import blob_span
from .queue_messages import encode_body
from .storage_clients import StorageClients
from .workers import PendingWork

log = logging.getLogger("devhost.blob")

RECEIPTS_CONTAINER = "azure-webjobs-hosts"
POISON_QUEUE = "webjobs-blobtrigger-poison"
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


class BlobGone(LookupError):
    """The blob was deleted between the listing and the invocation."""


@dataclass(frozen=True)
class BlobPathPattern:
    """A blob trigger path: its container, the regex for names, and the literal prefix."""

    container: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    prefix: str

    def match(self, blob_name: str) -> dict[str, str] | None:
        """Placeholder values for a blob name, or None when it does not match."""
        found = self.regex.match(blob_name)
        if not found:
            return None
        return {name: found.group(f"p{i}") for i, name in enumerate(self.names)}


def parse_blob_path(path: str) -> BlobPathPattern:
    """`container/pattern` → BlobPathPattern (ValueError for a templated container)."""
    container, _, pattern = path.strip("/").partition("/")
    if not container or "{" in container:
        raise ValueError(f"blob trigger path needs a literal container: {path!r}")
    regex, names, last = "^", [], 0
    for token in _PLACEHOLDER.finditer(pattern):
        regex += re.escape(pattern[last : token.start()])
        regex += f"(?P<p{len(names)}>.+?)"
        names.append(token.group(1).strip())
        last = token.end()
    if pattern:
        regex += re.escape(pattern[last:]) + "$"
    first = pattern.find("{")
    prefix = pattern if first < 0 else pattern[:first]
    return BlobPathPattern(container, re.compile(regex, re.DOTALL), tuple(names), prefix)


def sanitize_host_id(text: str) -> str:
    """A host id as Azure accepts it: lowercase letters, digits and dashes, at most 32."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:32].strip("-")
    return cleaned or "localhost"


class BlobScanner(PendingWork):
    """Scans one trigger container and runs the function for each new blob version."""

    def __init__(
        self,
        spec: FunctionSpec,
        storage: StorageClients,
        invoker: Invoker,
        *,
        host_id: str,
        interval: float,
        parallelism: int,
        max_failures: int,
        message_encoding: str,
    ) -> None:
        self.spec = spec
        connection = spec.trigger.get("connection")
        self.pattern = parse_blob_path(spec.trigger["path"])
        self._container = storage.container(connection, self.pattern.container)
        self._receipts = storage.container(connection, RECEIPTS_CONTAINER)
        self._poison = storage.queue(connection, POISON_QUEUE)
        self._invoker = invoker
        self._host_id = host_id
        self._interval = interval
        self._max_failures = max_failures
        self._encoding = message_encoding
        self._kind = blob_argument_kind(spec.annotations.get(spec.trigger["name"]))
        self._executor = ThreadPoolExecutor(
            max_workers=parallelism, thread_name_prefix=f"blob-{spec.name}"
        )
        self._lock = threading.Condition()
        self._pending: dict[Future[None], tuple[str, str]] = {}
        self._handled: dict[str, str] = {}  # blob name → the ETag whose receipt exists
        self._failures: dict[tuple[str, str], int] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"scan-{spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        """Stop scanning; drop invocations not started (no receipt: they fire next time)."""
        with self._lock:
            self._stopping.set()
            dropped = [f for f in list(self._pending) if f.cancel()]
            self._lock.notify_all()
        return len(dropped)

    def receipt_name(self, blob_name: str, etag: str) -> str:
        return (
            f"blobreceipts/{self._host_id}/{self.spec.name}/{etag}/"
            f"{self.pattern.container}/{blob_name}"
        )

    # scanning --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.scan_once()
            except Exception as exc:
                log.warning("scanning container %s failed: %s", self.pattern.container, exc)
            self._stopping.wait(self._interval)

    def scan_once(self) -> int:
        """One pass over the container; returns how many invocations it started."""
        started = 0
        listing = self._container.list_blobs(name_starts_with=self.pattern.prefix or None)
        for blob in listing:
            if self._stopping.is_set():
                break
            values = self.pattern.match(blob.name)
            if values is None:
                continue
            etag = str(blob.etag).strip('"')
            if self._handled.get(blob.name) == etag:
                continue
            key = (blob.name, etag)
            with self._lock:
                if key in self._pending.values():
                    continue
            if self._receipts.get_blob_client(self.receipt_name(blob.name, etag)).exists():
                self._handled[blob.name] = etag
                continue
            with self._lock:
                if self._stopping.is_set():
                    break
                future = self._executor.submit(self._process, blob.name, etag, values)
                self._pending[future] = key
                future.add_done_callback(self._finished)
                started += 1
        return started

    def _finished(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.pop(future, None)
            self._lock.notify_all()

    # one blob version --------------------------------------------------------------------

    def _process(self, blob_name: str, etag: str, values: dict[str, str]) -> None:
        trigger_name = self.spec.trigger["name"]
        container = self.pattern.container

        def bind() -> Bound:
            client = self._container.get_blob_client(blob_name)
            argument = blob_argument(self._kind, client, self._container)
            if argument is None:
                raise BlobGone(f"blob {container}/{blob_name} no longer exists")
            data = {**values, "blobTrigger": f"{container}/{blob_name}", "uri": client.url}
            return {trigger_name: argument}, data

        key = (blob_name, etag)
        try:
            self._invoker.invoke(self.spec, bind, blob_span(container, blob_name))
        except BlobGone:
            return
        except Exception:
            tries = self._failures.get(key, 0) + 1
            self._failures[key] = tries
            if tries < self._max_failures:
                log.warning(
                    "blob %s/%s failed in %s (%d of %d tries); retrying on a later scan",
                    container,
                    blob_name,
                    self.spec.name,
                    tries,
                    self._max_failures,
                )
                return
            self._to_poison(blob_name, etag)
        self._write_receipt(blob_name, etag)

    def _write_receipt(self, blob_name: str, etag: str) -> None:
        try:
            self._receipts.upload_blob(self.receipt_name(blob_name, etag), b"", overwrite=True)
        except Exception as exc:  # no receipt: it fires again, at-least-once
            log.error("writing the receipt for %s failed: %s", blob_name, exc)
            return
        self._handled[blob_name] = etag
        self._failures.pop((blob_name, etag), None)

    def _to_poison(self, blob_name: str, etag: str) -> None:
        log.error(
            "blob %s/%s failed %d times in %s; moving it to queue '%s'",
            self.pattern.container,
            blob_name,
            self._max_failures,
            self.spec.name,
            POISON_QUEUE,
        )
        message = {
            "Type": "BlobTrigger",
            "FunctionId": f"Host.Functions.{self.spec.name}",
            "BlobType": "BlockBlob",
            "ContainerName": self.pattern.container,
            "BlobName": blob_name,
            "ETag": f'"{etag}"',
        }
        self._poison.send_message(encode_body(json.dumps(message), self._encoding))
