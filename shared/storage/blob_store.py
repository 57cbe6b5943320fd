"""Streaming model upload and download with azure-storage-blob.

Memory stays flat whatever the file size: uploads go block by block with bounded
concurrency, downloads chunk by chunk, and sha256 is computed while the bytes pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from shared.errors import NotSupportedError, PayloadTooLargeError
from shared.storage.names import validate_model_name

BLOCK_SIZE = 4 * 1024 * 1024
CONCURRENCY = 2


class UploadTooLargeError(PayloadTooLargeError):
    """The upload passed ``limit`` bytes; nothing was committed."""

    code = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is larger than the limit of {limit} bytes")
        self.limit = limit


class UploadUrlUnavailableError(NotSupportedError):
    """The storage connection can sign no upload URL (no account key, no token)."""

    code = "upload_url_unavailable"


def _signing_key(service: Any, start: datetime, expiry: datetime) -> dict[str, Any]:
    """`generate_blob_sas` keyword for what can sign: the account key, else a user
    delegation key (token credentials only); neither: UploadUrlUnavailableError."""
    credential = service.credential
    key = getattr(credential, "account_key", None)
    if key:
        return {"account_key": key}
    if hasattr(credential, "get_token"):
        delegation = service.get_user_delegation_key(start, expiry, timeout=30)
        return {"user_delegation_key": delegation}
    raise UploadUrlUnavailableError(
        "the storage connection has neither an account key nor a token credential "
        "to sign an upload URL with"
    )


@dataclass(frozen=True)
class UploadUrl:
    url: str
    blob_name: str
    expires_at: datetime


@dataclass(frozen=True)
class BlobFile:
    container: str
    name: str
    uri: str
    size: int
    sha256: str
    content_type: str | None = None
    etag: str | None = None
    metadata: dict[str, str] | None = None  # the blob's own (x-ms-meta-*), when read


class _HashingReader(io.RawIOBase):
    """Wraps a source stream: hashes and counts what the uploader reads, enforces a cap."""

    def __init__(self, source: IO[bytes], max_bytes: int | None) -> None:
        self.source = source
        self.max_bytes = max_bytes
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size if size and size > 0 else BLOCK_SIZE)
        if chunk:
            self.size += len(chunk)
            if self.max_bytes is not None and self.size > self.max_bytes:
                raise UploadTooLargeError(self.max_bytes)
            self.sha.update(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class BlobModelStore:
    """Model files in one container; the database keeps only their URI, size and hash."""

    def __init__(self, blob_service: Any, container: str) -> None:
        self.service = blob_service
        self.container = container
        self._ensured = False

    def ensure_container(self) -> None:
        """Create the container unless it exists (the deployment creates it in Azure; a
        principal without the right to create one goes on and uses the existing one)."""
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        try:
            self.service.create_container(self.container)
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            if exc.status_code != 403:
                raise
        self._ensured = True

    def _before_write(self) -> None:
        if not self._ensured:
            self.ensure_container()

    def client(self, blob_name: str) -> Any:
        return self.service.get_blob_client(self.container, blob_name)

    def upload(
        self,
        blob_name: str,
        source: IO[bytes],
        *,
        max_bytes: int | None = None,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> BlobFile:
        """Stream `source` into the container; returns size and sha256 of what was sent."""
        from azure.storage.blob import ContentSettings

        _check_blob_name(blob_name)
        self._before_write()
        reader = _HashingReader(source, max_bytes)
        client = self.client(blob_name)
        client.upload_blob(
            reader,
            overwrite=True,
            max_concurrency=CONCURRENCY,
            content_settings=ContentSettings(content_type=content_type),
            metadata=metadata,
        )
        sha = reader.sha.hexdigest()
        client.set_blob_metadata({**(metadata or {}), "sha256": sha})
        props = client.get_blob_properties()
        return BlobFile(
            self.container, blob_name, client.url, reader.size, sha, content_type, props.etag
        )

    def upload_url(self, blob_name: str, ttl: timedelta) -> UploadUrl:
        """A URL that lets its holder write this one blob until it expires (a SAS with
        create and write only: it cannot read, list or delete).

        Signed with the account key of a connection string (Azurite, key-based accounts),
        or, for identity-based connections (shared-key access off), with a user delegation
        key that the app's identity obtains from the service for just this lifetime.
        """
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        _check_blob_name(blob_name)
        now = datetime.now(UTC)
        start, expiry = now - timedelta(minutes=5), now + ttl  # 5 min for clock skew
        signing = _signing_key(self.service, start, expiry)
        sas = generate_blob_sas(
            self.service.account_name,
            self.container,
            blob_name,
            permission=BlobSasPermissions(create=True, write=True),
            start=start,
            expiry=expiry,
            **signing,
        )
        return UploadUrl(f"{self.client(blob_name).url}?{sas}", blob_name, expiry)

    def chunks(self, blob_name: str) -> Iterator[bytes]:
        _check_blob_name(blob_name)
        downloader = self.client(blob_name).download_blob(max_concurrency=CONCURRENCY)
        yield from downloader.chunks()

    def download_to(self, blob_name: str, dest: Path) -> tuple[int, str]:
        """Write the blob to `dest` chunk by chunk; returns (size, sha256)."""
        sha = hashlib.sha256()
        size = 0
        with open(dest, "wb") as out:
            for chunk in self.chunks(blob_name):
                out.write(chunk)
                sha.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        return size, sha.hexdigest()

    def read_bytes(self, blob_name: str, max_bytes: int) -> bytes:
        """A small blob (a tokenizer, an id list) whole, refusing anything over `max_bytes`."""
        client = self.client(blob_name)
        size = int(client.get_blob_properties().size)
        if size > max_bytes:
            raise UploadTooLargeError(max_bytes)
        return client.download_blob().readall()

    def exists(self, blob_name: str) -> bool:
        _check_blob_name(blob_name)
        return bool(self.client(blob_name).exists())

    def size(self, blob_name: str) -> int:
        """The blob's size from its properties: no byte of it is read."""
        return int(self.client(blob_name).get_blob_properties().size)

    def hash_pinned(self, blob_name: str) -> BlobFile:
        """Hash a blob by streaming it, pinned to the etag seen first (fails if it changes)."""
        from azure.core import MatchConditions

        _check_blob_name(blob_name)
        client = self.client(blob_name)
        props = client.get_blob_properties()
        sha = hashlib.sha256()
        downloader = client.download_blob(
            max_concurrency=CONCURRENCY,
            etag=props.etag,
            match_condition=MatchConditions.IfNotModified,
        )
        for chunk in downloader.chunks():
            sha.update(chunk)
        return BlobFile(
            self.container,
            blob_name,
            client.url,
            int(props.size),
            sha.hexdigest(),
            props.content_settings.content_type,
            props.etag,
            dict(props.metadata or {}),
        )

    def archive(self, source: BlobFile, model_name: str) -> BlobFile:
        """Server-side copy of `source` (any container of the account) into this one under
        its immutable version name (no bytes pass through here)."""
        target_name = archive_name(model_name, source.sha256)
        if not self.client(target_name).exists():
            self._copy(source, target_name, {"sha256": source.sha256, "model": model_name})
        return self._as(source, target_name)

    def publish(
        self, source: BlobFile, blob_name: str, metadata: dict[str, str] | None = None
    ) -> None:
        """Server-side copy of `source` (any container of the account) to `blob_name`."""
        _check_blob_name(blob_name)
        self._copy(source, blob_name, {**(metadata or {}), "sha256": source.sha256})

    def sweep(self, older_than: timedelta) -> int:
        """Delete blobs older than `older_than` (staging left by uploads that died
        midway); returns how many."""
        cutoff = datetime.now(UTC) - older_than
        stale = [
            b.name
            for b in self.service.get_container_client(self.container).list_blobs()
            if b.last_modified is not None and b.last_modified <= cutoff
        ]
        for name in stale:
            self.delete(name)
        return len(stale)

    def delete(self, blob_name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        _check_blob_name(blob_name)
        with contextlib.suppress(ResourceNotFoundError):
            self.client(blob_name).delete_blob()

    def _copy(self, source: BlobFile, target_name: str, metadata: dict[str, str]) -> None:
        import time

        from azure.core import MatchConditions

        self._before_write()
        target = self.client(target_name)
        target.start_copy_from_url(
            self.service.get_blob_client(source.container, source.name).url,
            metadata=metadata,
            source_etag=source.etag,
            source_match_condition=MatchConditions.IfNotModified,
        )
        deadline = time.monotonic() + 600
        while target.get_blob_properties().copy.status == "pending":
            if time.monotonic() > deadline:
                raise TimeoutError(f"copy of {source.name} to {target_name} did not finish")
            time.sleep(0.2)
        status = target.get_blob_properties().copy.status
        if status not in (None, "success"):
            raise RuntimeError(f"copy of {source.name} to {target_name} ended {status}")

    def _as(self, source: BlobFile, blob_name: str) -> BlobFile:
        """`source`'s size and hash under another name, with that blob's own URL and etag."""
        target = self.client(blob_name)
        return BlobFile(
            self.container,
            blob_name,
            target.url,
            source.size,
            source.sha256,
            source.content_type,
            target.get_blob_properties().etag,
        )


def staging_name() -> str:
    """A fresh name for an upload in flight (in the uploads container)."""
    import uuid

    return f"{uuid.uuid4().hex}.onnx"


_ARCHIVE = re.compile(r"^([^/]+)/([0-9a-f]{64})\.onnx$")


def archive_name(model_name: str, sha256: str) -> str:
    """Where a registered version's bytes live, immutable: `<name>/<sha256>.onnx` in the
    versions container."""
    validate_model_name(model_name)
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"sha256: {sha256!r} is not 64 lowercase hex digits")
    return f"{model_name}/{sha256}.onnx"


def _check_blob_name(blob_name: str) -> None:
    """Blob names are model names plus a known suffix, or version names; never paths."""
    archived = _ARCHIVE.match(blob_name)
    if archived:
        validate_model_name(archived.group(1), "blob")
        return
    for suffix in (".onnx", ".tokenizer.json", ".npy", ".json", ".jsonl"):
        if blob_name.endswith(suffix):
            validate_model_name(blob_name[: -len(suffix)], "blob")
            return
    validate_model_name(blob_name, "blob")
