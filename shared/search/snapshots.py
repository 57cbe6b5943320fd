"""Snapshots of compressed search sets in Blob Storage, for fast cold loads.

A new instance would otherwise rebuild a set from SQL row by row and quantise it again.
A snapshot holds everything the set needs (the int8 codes and per-row bounds, the row
ids and the float32 rows) as one blob in the layout ``snapshot_format`` describes.

A cold process reads the header with one small ranged read, then the members
with parallel ranged reads (``max_concurrency``): the resident ones into one buffer
(arrays are views of it), the float32 rows straight into the memory-mapped rows file.
It is used only if its version is the one SQL reports and every CRC matches; anything
else (missing, stale, truncated, corrupt) returns None and the caller loads from SQL.
Every read after the first names the etag that first read saw, so a snapshot another
instance rewrites meanwhile is refused, never read half old and half new.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from shared.search import quantized
from shared.search import snapshot_format as fmt
from shared.search.loaded import LoadedSet, SnapshotRowsError, metadata_columns
from shared.search.rowfile import map_rows

log = logging.getLogger(__name__)

HEAD_READ = 64 * 1024  # one ranged read that usually holds the whole header
CONCURRENCY = 8
RANGE_BYTES = 32 * 1024 * 1024
#: Upload blocks stay small: blocks in flight are buffered (8 MiB x 4 = 32 MiB), and the
#: upload runs in the background of a serving instance.
UPLOAD_BLOCK_BYTES = 8 * 1024 * 1024
UPLOAD_CONCURRENCY = 4
#: Rows members at least this big are not waited for: the set answers at once, reading
#: the few rows a query re-scores by range until the whole member is in its mapped file.
LAZY_ROWS_FROM = 64 * 1024 * 1024
#: Retries of the delete that follows a row deletion: none. The caller waits for it, so
#: an unreachable account fails it at once (the storage SDK backs off 15 s per retry);
#: the stale copy goes when the set next loads.
FORGET_RETRIES = 0
#: A snapshot is an optimisation (SQL answers without it), read while a search waits:
#: its client gives up fast when storage does not answer, and the first read of a load
#: is not retried at all (the search falls back to SQL instead). Per socket operation,
#: so a large snapshot still downloads as long as bytes keep moving.
CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 3,
    "read_timeout": 10,
    "retry_total": 1,
    "initial_backoff": 1,
    "increment_base": 2,
    "random_jitter_range": 1,
}
LOAD_RETRIES = 0


class RemoteRows:
    """The float32 rows of a snapshot while they download into their mapped file.

    ``gather`` reads the requested rows by range (adjacent rows in one request, several
    requests at once) and checks each against the set's codes and bounds (the decoded
    row plus at most the residual norm, and the stored norm), so a damaged row is
    caught before it is used; ``array`` is the mapped file once complete and CRC-checked.

    Every read carries ``pinned`` (the etag the header was read with): rows of a
    snapshot rewritten since are refused by storage, never mixed with this one's codes.
    A read that fails, refused or not answered, is a ``SnapshotRowsError``: the set then
    loads from SQL, as it does for a damaged row.
    """

    def __init__(
        self,
        client: Any,
        member: dict[str, Any],
        shape: tuple[int, int],
        rows_dir: Path,
        pinned: dict[str, Any],
    ) -> None:
        self.shape = shape
        self._client = client
        self._member = member
        self._pinned = pinned
        self._done = threading.Event()
        self._array: np.ndarray | None = None
        self.failed: Exception | None = None
        self.check: Any = None  # set by the loader: (idx, rows) -> None, raises if wrong
        thread = threading.Thread(
            target=self._fetch_all, args=(rows_dir,), name="search-snapshot-rows", daemon=True
        )
        thread.start()

    def _fetch_all(self, rows_dir: Path) -> None:
        m = self._member

        def fill(f: Any) -> None:
            self._client.download_blob(
                offset=m["offset"],
                length=m["nbytes"],
                max_concurrency=CONCURRENCY,
                **self._pinned,
            ).readinto(f)

        try:
            rows = map_rows(rows_dir, self.shape[0], self.shape[1], fill)
            if zlib.crc32(memoryview(rows).cast("B")) != m["crc32"]:
                raise SnapshotRowsError("member rows: CRC mismatch")
            self._array = rows
        except Exception as err:  # kept: the next search falls back to SQL
            log.warning("search snapshot rows unusable: %s", err)
            self.failed = err
        finally:
            self._done.set()

    def array(self, wait: bool = False) -> np.ndarray | None:
        if wait:
            self._done.wait()
        if self.failed is not None:
            raise SnapshotRowsError(str(self.failed))
        return self._array if self._done.is_set() else None

    def gather(self, idx: np.ndarray) -> np.ndarray:
        full = self.array()
        if full is not None:
            return np.asarray(full[idx])
        dim = self.shape[1]
        out = np.empty((idx.size, dim), np.float32)
        if not idx.size:
            return out
        cuts = np.flatnonzero(np.diff(idx) != 1) + 1
        starts = np.concatenate([[0], cuts])
        stops = np.concatenate([cuts, [idx.size]])
        row_bytes = dim * 4

        def fetch(span: tuple[int, int]) -> None:
            a, b = span
            data = self._client.download_blob(
                offset=self._member["offset"] + int(idx[a]) * row_bytes,
                length=(b - a) * row_bytes,
                **self._pinned,
            ).readall()
            if len(data) != (b - a) * row_bytes:
                raise SnapshotRowsError("snapshot rows shorter than their header says")
            out[a:b] = np.frombuffer(data, "<f4").reshape(b - a, dim)

        from azure.core.exceptions import AzureError

        try:
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                list(pool.map(fetch, zip(starts.tolist(), stops.tolist(), strict=True)))
        except AzureError as err:
            raise SnapshotRowsError(f"snapshot rows unreadable: {err}") from err
        if self.check is not None:
            self.check(idx, out)
        return out


def blob_name(model_id: str, embedding_type: str) -> str:
    """One blob per set, named by a hash (model ids may hold any character)."""
    key = json.dumps([model_id, embedding_type]).encode()
    return f"sets/{hashlib.sha256(key).hexdigest()}.hsnap"


class _Concat(io.RawIOBase):
    """A read-only stream over byte buffers laid end to end, with no copy of them."""

    def __init__(self, parts: list[memoryview]) -> None:
        self.parts = parts
        self.index = 0
        self.offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        done = 0
        while done < len(out) and self.index < len(self.parts):
            part = self.parts[self.index]
            take = min(len(out) - done, len(part) - self.offset)
            out[done : done + take] = part[self.offset : self.offset + take]
            done += take
            self.offset += take
            if self.offset == len(part):
                self.index, self.offset = self.index + 1, 0
        return done


class _Into(io.RawIOBase):
    """A writable, seekable stream over a preallocated buffer: the SDK's parallel
    ranged reads land in place (``BytesIO`` would copy the buffer)."""

    def __init__(self, buffer: bytearray) -> None:
        self.view = memoryview(buffer)
        self.pos = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: len(self.view)}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def write(self, data: Any) -> int:
        chunk = memoryview(data).cast("B")
        if self.pos + len(chunk) > len(self.view):
            raise ValueError("snapshot member longer than its header says")
        self.view[self.pos : self.pos + len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


class SnapshotStore:
    """Writes and reads set snapshots in one container (created on first write)."""

    def __init__(self, blob_service: Any, container: str) -> None:
        """``blob_service``: a BlobServiceClient, or a function that makes one when
        first needed (so a process without storage settings still searches)."""
        self._service = blob_service
        self.container = container
        self._ensured = False
        self.lazy_rows_from = LAZY_ROWS_FROM

    @property
    def service(self) -> Any:
        if callable(self._service) and not hasattr(self._service, "get_blob_client"):
            self._service = self._service()
        return self._service

    def _client(self, model_id: str, embedding_type: str) -> Any:
        """A client with 32 MiB ranges: per-request overhead, not bandwidth, limits 4 MiB
        ranges (Azurite served 240 MB/s with 4 MiB ranges, 440 MB/s with 32 MiB)."""
        from azure.storage.blob import BlobClient

        service = self.service
        return BlobClient(
            service.url,
            self.container,
            blob_name(model_id, embedding_type),
            credential=service.credential,
            max_chunk_get_size=RANGE_BYTES,
            max_single_get_size=RANGE_BYTES,
            max_block_size=UPLOAD_BLOCK_BYTES,
            **CLIENT_OPTIONS,
        )

    def save(self, loaded: LoadedSet) -> None:
        """Upload a snapshot of ``loaded`` (a compressed set), replacing any older one."""
        qr = loaded.compressed
        if qr is None:
            raise ValueError("only compressed sets are snapshotted")
        ids = json.dumps(loaded.ids, ensure_ascii=False).encode()
        rows_meta = [loaded.metadata_of(i) for i in range(qr.count)]
        meta = json.dumps(rows_meta, ensure_ascii=False, separators=(",", ":")).encode()
        arrays = {name: np.ascontiguousarray(getattr(qr, name)) for name in fmt.MEMBERS}
        arrays["ids"] = np.frombuffer(ids, np.uint8)
        arrays["metadata"] = np.frombuffer(meta, np.uint8)
        arrays["rows"] = np.asarray(qr.rows)
        header = {
            "format": fmt.FORMAT,
            "model_id": loaded.model_id,
            "embedding_type": loaded.embedding_type,
            "version": loaded.version,
            "count": qr.count,
            "dim": qr.dim,
        }
        parts, pos = fmt.encode(header, arrays)
        self._ensure_container()
        self._client(loaded.model_id, loaded.embedding_type).upload_blob(
            _Concat(parts),
            length=pos,
            overwrite=True,
            max_concurrency=UPLOAD_CONCURRENCY,
            metadata={"version": str(loaded.version)},
        )

    def forget(self, model_id: str, embedding_type: str) -> None:
        """Remove a set's snapshot now: rows were deleted, and a copy of them must not
        outlive the deletion (the next load reads SQL and snapshots the set again)."""
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):  # no snapshot, or no container
            self._client(model_id, embedding_type).delete_blob(retry_total=FORGET_RETRIES)

    def _drop_stale(self, client: Any, etag: str) -> None:
        """A snapshot older than the set's version is never read again (versions only
        grow): delete it unless another process has just rewritten it."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        # rewritten or removed meanwhile: nothing stale is left by us
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            client.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)

    def _ensure_container(self) -> None:
        if self._ensured:
            return
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self.service.create_container(self.container)
        self._ensured = True

    def load(
        self, model_id: str, embedding_type: str, version: int, rows_dir: Path
    ) -> LoadedSet | None:
        """The set at ``version`` from its snapshot, or None (missing, stale, corrupt)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        client = self._client(model_id, embedding_type)
        try:
            head = client.download_blob(offset=0, length=HEAD_READ, retry_total=LOAD_RETRIES)
            first = head.readall()
            # Every later read is of the blob this header came from, or refused.
            pinned = {
                "etag": head.properties.etag,
                "match_condition": MatchConditions.IfNotModified,
            }
            needed = fmt.head_length(first)
            if needed is not None and needed > len(first):
                first = client.download_blob(offset=0, length=needed, **pinned).readall()
            header = fmt.decode_head(first)
            if header is None:
                log.warning("search snapshot %s: unreadable header", client.blob_name)
                return None
            stored = (header["model_id"], header["embedding_type"], header["version"])
            if stored != (model_id, embedding_type, version):
                if stored[:2] == (model_id, embedding_type) and stored[2] < version:
                    self._drop_stale(client, head.properties.etag)
                return None  # stale: SQL has moved on
            return self._read(client, header, rows_dir, pinned)
        except ResourceNotFoundError:
            return None
        except ResourceModifiedError:
            log.warning("search snapshot %s rewritten while it was read", client.blob_name)
            return None
        except (ValueError, KeyError, TypeError) as err:  # SnapshotRowsError included
            log.warning("search snapshot %s unusable: %s", client.blob_name, err)
            return None

    def _read(
        self, client: Any, header: dict[str, Any], rows_dir: Path, pinned: dict[str, Any]
    ) -> LoadedSet:

        members = header["members"]
        first = members[fmt.MEMBERS[0]]["offset"]
        last = members["metadata"]
        length = last["offset"] + last["nbytes"] - first
        buf = bytearray(length)
        stream = client.download_blob(
            offset=first, length=length, max_concurrency=CONCURRENCY, **pinned
        )
        if stream.readinto(_Into(buf)) != length:
            raise ValueError("snapshot shorter than its header says")
        arrays = fmt.decode_members(buf, first, members, (*fmt.MEMBERS, "ids", "metadata"))
        rows_m = members["rows"]
        count, dim = int(header["count"]), int(header["dim"])
        if rows_m["shape"] != [count, dim] or arrays["codes"].shape != (count, dim):
            raise ValueError("member shapes disagree with the header")

        ids = json.loads(bytes(arrays.pop("ids")).decode())
        if len(ids) != count:
            raise ValueError("ids disagree with the row count")
        rows_meta = json.loads(bytes(arrays.pop("metadata")).decode())
        if not isinstance(rows_meta, list) or len(rows_meta) != count:
            raise ValueError("metadata disagrees with the row count")
        remote = RemoteRows(client, rows_m, (count, dim), rows_dir, pinned)
        lazy = rows_m["nbytes"] >= self.lazy_rows_from
        rows: Any = remote if lazy else remote.array(wait=True)
        qr = quantized.QuantizedRows(**arrays, rows=rows)
        remote.check = fmt.row_check(qr)
        return LoadedSet(
            header["model_id"],
            header["embedding_type"],
            int(header["version"]),
            ids,
            None,
            qr,
            metadata=metadata_columns(rows_meta),
        )
