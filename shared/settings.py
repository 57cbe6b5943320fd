"""Settings from the environment: the same keys as local.settings.json "Values".

Locally every setting has a default that makes the run (Azurite + SQLite) work with no
configuration at all. In Azure (`WEBSITE_INSTANCE_ID` is set) nothing falls back to a
local default: the app folder is read-only and there is no emulator, so the SQL and
storage connections must be set, local folders default to /tmp, and caches default to
a share of the instance's memory. An invalid value raises `ConfigError` naming the
setting. A missing required one is reported by the part that needs it
(`Settings.require`), so functions that do not need it keep working and the worker
still indexes every function.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]
AZURE_DATA_DIR = Path("/tmp/hartonomous")  # the one writable place in Azure
MiB = 1024 * 1024


def in_azure(environ: Mapping[str, str] | None = None) -> bool:
    """The Functions host in Azure sets WEBSITE_INSTANCE_ID; nothing local does."""
    env = os.environ if environ is None else environ
    return bool(env.get("WEBSITE_INSTANCE_ID", "").strip())


def instance_memory_bytes(
    environ: Mapping[str, str] | None = None, cgroup_root: Path = Path("/sys/fs/cgroup")
) -> int:
    """Memory this instance may use: `INSTANCE_MEMORY_MB` if set, else the cgroup limit
    (how Flex Consumption enforces its 512, 2048 or 4096 MB), else physical memory."""
    env = os.environ if environ is None else environ
    override = env.get("INSTANCE_MEMORY_MB", "").strip()
    if override:
        return _int("INSTANCE_MEMORY_MB", override, 128, 1024 * 1024) * MiB
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in (cgroup_root / "memory.max", cgroup_root / "memory/memory.limit_in_bytes"):
        try:
            raw = limit_file.read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and 0 < int(raw) < physical:
            return int(raw)
    return physical


class ConfigError(ConfigurationError, ValueError):
    """A setting has a value the app cannot use; ``field`` and ``setting`` name it."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"setting {setting}: {reason}", field=setting, reason=reason)
        self.setting = setting


def _int(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo} and {hi}, got {value}")
    return value


def _name(name: str, raw: str) -> str:
    """Container and queue names: Azure's rules (3-63 chars, lowercase, digits, hyphens)."""
    value = raw.strip()
    ok = (
        3 <= len(value) <= 63
        and value[0].isalnum()
        and value[-1].isalnum()
        and all(c.islower() or c.isdigit() or c == "-" for c in value)
        and "--" not in value
    )
    if not ok:
        raise ConfigError(
            name, f"{raw!r} is not a valid container/queue name (3-63 of a-z, 0-9, '-')"
        )
    return value


def _str(name: str, raw: str) -> str:
    return raw.strip()


def _nonempty(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(name, "must not be empty")
    return raw.strip()


@dataclass(frozen=True)
class Setting:
    """One setting. `default` applies everywhere unless `local_default` overrides it off
    Azure; a `None` default makes the setting required (the part that needs it says so).
    A callable default is computed from the environment (shares of instance memory)."""

    key: str
    default: str | Callable[[Mapping[str, str]], str] | None
    parse: Callable[[str, str], Any]
    doc: str
    local_default: str | None = None
    default_doc: str | None = None  # how the README shows a computed default

    def default_for(self, environ: Mapping[str, str]) -> str | None:
        if self.local_default is not None and not in_azure(environ):
            return self.local_default
        if callable(self.default):
            return self.default(environ)
        return self.default


def _memory_share(fraction: float, cap: int) -> Callable[[Mapping[str, str]], str]:
    return lambda env: str(max(MiB, min(cap, int(instance_memory_bytes(env) * fraction))))


# One table: the config module, local.settings.sample.json and the README all follow it.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "AzureWebJobsStorage",
        "",
        _str,
        # Empty: the identity-based AzureWebJobsStorage__* settings, else (locally only)
        # UseDevelopmentStorage=true; shared/storage/accounts.py resolves which.
        "Storage account connection string (blobs, queues, host receipts).",
    ),
    Setting(
        "SQL_CONNECTION_STRING",
        None,
        _nonempty,
        "sqlite:///<path> (embedded), or an ODBC string (SQL Server / Azure SQL via pyodbc). "
        "Required in Azure.",
        local_default="sqlite:///.data/hartonomous.db",
    ),
    Setting(
        "MODELS_CONTAINER",
        "models",
        _name,
        "Blob container users upload models to (the blob trigger watches it).",
    ),
    Setting(
        "MODEL_VERSIONS_CONTAINER",
        "model-versions",
        _name,
        "Blob container of registered versions, immutable: <name>/<sha256>.onnx.",
    ),
    Setting(
        "MODEL_UPLOADS_CONTAINER",
        "model-uploads",
        _name,
        "Blob container holding API uploads while they are registered.",
    ),
    Setting("INGESTION_QUEUE", "ingestion-jobs", _name, "Queue that carries ingestion jobs."),
    Setting(
        "INGEST_CONTAINER",
        "ingest",
        _name,
        "Blob container for embeddings batch files (.npy + .json ids, or .jsonl).",
    ),
    Setting(
        "DATA_DIR",
        str(AZURE_DATA_DIR),
        _nonempty,
        "Local folder for the model cache and tokenizers (and the local SQLite file).",
        local_default=".data",
    ),
    Setting(
        "MAX_REQUEST_BYTES",
        str(16 * MiB),
        lambda n, r: _int(n, r, 1024, 1024 * MiB),
        "Largest JSON request body the API accepts.",
    ),
    Setting(
        "MAX_UPLOAD_BYTES",
        str(2048 * MiB),
        lambda n, r: _int(n, r, 1024, 64 * 1024 * MiB),
        "Largest model: POST /api/models refuses a bigger body; ingestion fails a bigger blob.",
    ),
    Setting(
        "MAX_VECTOR_DIM",
        "4096",
        lambda n, r: _int(n, r, 1, 65536),
        "Largest vector dimension.",
    ),
    Setting(
        "MAX_BATCH_ROWS",
        "10000",
        lambda n, r: _int(n, r, 1, 10_000_000),
        "Most vectors (rows) in one request.",
    ),
    Setting(
        "MODEL_CACHE_BYTES",
        _memory_share(0.5, 4096 * MiB),
        lambda n, r: _int(n, r, MiB, 1024 * 1024 * MiB),
        "Local model file cache size (LRU, sha256-verified).",
        default_doc="half the instance memory, at most 4 GiB",
    ),
    Setting(
        "SEARCH_CACHE_BYTES",
        _memory_share(0.25, 4096 * MiB),
        lambda n, r: _int(n, r, MiB, 1024 * 1024 * MiB),
        "Memory for in-memory search matrices (least recently searched sets go first).",
        default_doc="a quarter of the instance memory, at most 4 GiB",
    ),
    Setting(
        "SEARCH_COMPRESS_FROM_ROWS",
        "20000",
        lambda n, r: _int(n, r, 1, 2**31 - 1),
        "Sets with at least this many rows are searched compressed (int8 codes resident, "
        "float32 rows memory-mapped under DATA_DIR); smaller ones stay float32.",
    ),
    Setting(
        "SEARCH_SNAPSHOTS_CONTAINER",
        "search-snapshots",
        _name,
        "Blob container for snapshots of compressed search sets (fast cold loads). "
        "Created on first write.",
    ),
    Setting(
        "SEARCH_SNAPSHOT_SETTLE_SECONDS",
        "30",
        lambda n, r: _int(n, r, 0, 86400),
        "A set loaded from SQL is snapshotted once its version has held this long.",
    ),
    Setting(
        "SQL_BUSY_TIMEOUT_MS",
        "10000",
        lambda n, r: _int(n, r, 100, 600_000),
        "How long an embedded SQLite write waits for other writers before the request "
        "answers 503 with Retry-After.",
    ),
    Setting(
        "MAX_SESSIONS",
        "4",
        lambda n, r: _int(n, r, 1, 256),
        "ONNX sessions kept loaded (LRU), inference and text embedding together.",
    ),
    Setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "",
        _str,
        "Application Insights, for the host (the worker, or the local host) to export to when "
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true; the app never configures export.",
    ),
)


@dataclass(frozen=True)
class Settings:
    storage_connection: str
    sql_connection: str | None
    models_container: str
    model_versions_container: str
    model_uploads_container: str
    ingestion_queue: str
    ingest_container: str
    data_dir: Path
    max_request_bytes: int
    max_upload_bytes: int
    max_vector_dim: int
    max_batch_rows: int
    model_cache_bytes: int
    search_cache_bytes: int
    search_compress_from_rows: int
    search_snapshots_container: str
    search_snapshot_settle_seconds: int
    sql_busy_timeout_ms: int
    max_sessions: int
    appinsights_connection: str
    azure: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        azure = in_azure(env)
        values = []
        for setting in SETTINGS:
            raw = env.get(setting.key)
            default = setting.default_for(env)
            if raw is None or (raw.strip() == "" and default != ""):
                raw = default
            values.append(None if raw is None else setting.parse(setting.key, raw))
        kwargs = dict(zip([f.name for f in fields(cls) if f.name != "azure"], values, strict=True))
        base = AZURE_DATA_DIR if azure else ROOT
        data_dir = Path(kwargs["data_dir"])
        kwargs["data_dir"] = data_dir if data_dir.is_absolute() else base / data_dir
        sql = kwargs["sql_connection"]
        if azure and sql and _relative_sqlite(sql):
            raise ConfigError(
                "SQL_CONNECTION_STRING",
                "a relative SQLite path points into the app folder, which is read-only in "
                "Azure: use Azure SQL (an ODBC connection string) or an absolute path",
            )
        return cls(**kwargs, azure=azure)

    def require(self, field: str) -> Any:
        """A setting the caller cannot work without: ConfigError naming it when unset."""
        value = getattr(self, field)
        if value is None:
            key = _KEYS[field]
            where = "in Azure (WEBSITE_INSTANCE_ID is set)" if self.azure else "here"
            raise ConfigError(key, f"is required {where} and not set")
        return value

    @property
    def poison_queue(self) -> str:
        return f"{self.ingestion_queue}-poison"


_KEYS = {
    "storage_connection": "AzureWebJobsStorage",
    "sql_connection": "SQL_CONNECTION_STRING",
}


def _relative_sqlite(url: str) -> bool:
    prefix = "sqlite:///"
    return url.lower().startswith(prefix) and not url[len(prefix) :].startswith("/")


def binding_name(key: str, environ: Mapping[str, str] | None = None) -> str:
    """A container or queue name for a trigger decorator, read at import time.

    With worker indexing the Python worker reports binding metadata to the host, so a
    value computed here is what the host listens on, in Azure and locally, defaults
    included. Import must never fail ("0 functions found"): an invalid value falls
    back to the default here, and `get_settings()` reports it on first use.
    """
    setting = next(s for s in SETTINGS if s.key == key)
    env = os.environ if environ is None else environ
    default = setting.default_for(env)
    assert isinstance(default, str)
    try:
        return setting.parse(key, env.get(key) or default)
    except ConfigError:
        return default


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once (tests build their own with `Settings.from_env`)."""
    return Settings.from_env()
