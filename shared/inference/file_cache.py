"""A bounded local cache of model files, keyed and verified by sha256.

Sessions need a local path; model bytes live in Blob Storage. Each file is fetched once,
checked against the registered sha256 while it is read back, and moved into place with
os.replace, so readers never see a partial file and several processes can share the
folder. Least-recently-used files (by mtime, touched on every hit) are evicted once the
folder holds more than ``max_bytes``.

Each model sits alone in its own folder (``<sha256>/model.onnx``): ONNX external data
resolves relative to the model file, so a model can never read another cached model.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from shared.registry.errors import IntegrityError

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"[0-9a-f]{64}")
CHUNK_BYTES = 1 << 20
MODEL_FILE = "model.onnx"
STALE_TEMP_SECONDS = 24 * 3600  # temp files a crashed process left behind


def _check_sha(sha256: str) -> str:
    value = sha256.strip().lower() if isinstance(sha256, str) else ""
    if not _SHA256.fullmatch(value):
        raise ValueError(f"sha256 must be 64 hex characters, got {sha256!r}")
    return value


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (constant memory for GB-size models)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class ModelFileCache:
    """``path_for(sha, fetch)``: a verified local copy of the model with that sha256."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._evict_lock = threading.Lock()
        self._clock_lock = threading.Lock()
        self._last_ns = 0
        self._verified: dict[str, tuple[int, int]] = {}  # sha -> (size, mtime_ns) checked
        self.fetches = 0  # how many times bytes were fetched (hits do not count)

    def _lock(self, sha: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(sha, threading.Lock())

    def _file(self, sha: str) -> Path:
        return self.root / sha / MODEL_FILE

    def _touch(self, path: Path) -> None:
        """Mark as most recently used; strictly increasing within the process."""
        with self._clock_lock:
            ns = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = ns
        os.utime(path, ns=(ns, ns))

    def path_for(self, sha256: str, fetch: Callable[[Path], None]) -> Path:
        """The cached file for ``sha256``; on a miss ``fetch(tmp)`` writes the bytes to tmp.

        IntegrityError if the fetched bytes have another sha256 (nothing is cached then).
        """
        sha = _check_sha(sha256)
        path = self._file(sha)
        with self._lock(sha):
            if self._intact(sha, path):
                self._touch(path)
                return path
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{sha}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
            try:
                fetch(tmp)
                self.fetches += 1
                if not tmp.is_file():
                    raise IntegrityError(f"the download of model {sha[:12]} wrote no file")
                actual = file_sha256(tmp)
                if actual != sha:
                    raise IntegrityError(
                        f"the downloaded model has sha256 {actual[:12]}..., the registered "
                        f"one is {sha[:12]}...; the blob changed after registration or the "
                        "download was corrupted: upload the model again"
                    )
                path.parent.mkdir(exist_ok=True)
                os.replace(tmp, path)
                self._touch(path)
                self._remember(sha, path)
            finally:
                tmp.unlink(missing_ok=True)
            self._evict(keep=path)
            return path

    def _intact(self, sha: str, path: Path) -> bool:
        """Whether the cached file is there and still has its sha256. Hashed once per
        process (and again if its size or mtime changed behind the cache's back): a file
        damaged on disk is dropped and fetched again, never served."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        if self._verified.get(sha) == (st.st_size, st.st_mtime_ns):
            return True
        if file_sha256(path) != sha:
            log.warning("cached model %s... failed its sha256 check; fetching it again", sha[:12])
            path.unlink(missing_ok=True)
            self._verified.pop(sha, None)
            return False
        self._remember(sha, path)
        return True

    def _remember(self, sha: str, path: Path) -> None:
        st = path.stat()
        self._verified[sha] = (st.st_size, st.st_mtime_ns)

    def _entries(self) -> list[tuple[int, Path, int]]:
        """(mtime_ns, path, size) of cached files; temp files too old to be live go away."""
        entries = []
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        now = time.time()
        for name in names:
            path = self.root / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if name.endswith(".tmp"):
                if now - st.st_mtime > STALE_TEMP_SECONDS:
                    path.unlink(missing_ok=True)
                continue
            if _SHA256.fullmatch(name):
                try:
                    model = (path / MODEL_FILE).stat()
                except (FileNotFoundError, NotADirectoryError):
                    continue
                entries.append((model.st_mtime_ns, path / MODEL_FILE, model.st_size))
        return entries

    def _evict(self, keep: Path) -> None:
        """Remove least-recently-used files until the total fits (never ``keep``)."""
        with self._evict_lock:
            entries = sorted(self._entries())
            total = sum(size for _, _, size in entries)
            for _, path, size in entries:
                if total <= self.max_bytes:
                    break
                if path == keep:
                    continue
                lock = self._locks.get(path.parent.name)
                if lock is not None and lock.locked():
                    continue  # being fetched or handed out by another thread right now
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # another process may be filling it
                    path.parent.rmdir()
                total -= size
