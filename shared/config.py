"""Settings from the environment: the same keys as local.settings.json "Values".

Every setting has a default that makes the local run (Azurite + SQLite) work with
no configuration at all. An invalid value raises `ConfigError` naming the setting.
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
    key: str
    default: str
    parse: Callable[[str, str], Any]
    doc: str


MiB = 1024 * 1024

# One table: the config module, local.settings.sample.json and the README all follow it.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "AzureWebJobsStorage",
        "UseDevelopmentStorage=true",
        _nonempty,
        "Storage account connection string (blobs, queues, host receipts).",
    ),
    Setting(
        "SQL_CONNECTION_STRING",
        "sqlite:///.data/hartonomous.db",
        _nonempty,
        "sqlite:///<path> (embedded), or an ODBC string (SQL Server / Azure SQL via pyodbc).",
    ),
    Setting("MODELS_CONTAINER", "models", _name, "Blob container that holds model files."),
    Setting("INGESTION_QUEUE", "ingestion-jobs", _name, "Queue that carries ingestion jobs."),
    Setting(
        "INGEST_CONTAINER",
        "ingest",
        _name,
        "Blob container for embeddings batch files (.npy + .json ids, or .jsonl).",
    ),
    Setting(
        "DATA_DIR", ".data", _nonempty, "Local folder for the SQLite file and the model cache."
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
        str(4096 * MiB),
        lambda n, r: _int(n, r, MiB, 1024 * 1024 * MiB),
        "Local model file cache size (LRU, sha256-verified).",
    ),
    Setting(
        "SEARCH_CACHE_BYTES",
        str(4096 * MiB),
        lambda n, r: _int(n, r, MiB, 1024 * 1024 * MiB),
        "Memory for in-memory search matrices (least recently searched sets go first).",
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
        "Application Insights; empty turns Azure Monitor export off.",
    ),
)


@dataclass(frozen=True)
class Settings:
    storage_connection: str
    sql_connection: str
    models_container: str
    ingestion_queue: str
    ingest_container: str
    data_dir: Path
    max_request_bytes: int
    max_upload_bytes: int
    max_vector_dim: int
    max_batch_rows: int
    model_cache_bytes: int
    search_cache_bytes: int
    max_sessions: int
    appinsights_connection: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = []
        for setting in SETTINGS:
            raw = env.get(setting.key)
            if raw is None or (raw.strip() == "" and setting.default != ""):
                raw = setting.default
            values.append(setting.parse(setting.key, raw))
        kwargs = dict(zip([f.name for f in fields(cls)], values, strict=True))
        data_dir = Path(kwargs["data_dir"])
        kwargs["data_dir"] = data_dir if data_dir.is_absolute() else ROOT / data_dir
        return cls(**kwargs)

    @property
    def poison_queue(self) -> str:
        return f"{self.ingestion_queue}-poison"


def binding_name(key: str, environ: Mapping[str, str] | None = None) -> str:
    """A container or queue name for a trigger decorator, read at import time.

    With worker indexing the Python worker reports binding metadata to the host, so a
    value computed here is what the host listens on, in Azure and locally, defaults
    included. Import must never fail ("0 functions found"): an invalid value falls
    back to the default here, and `get_settings()` reports it on first use.
    """
    setting = next(s for s in SETTINGS if s.key == key)
    env = os.environ if environ is None else environ
    try:
        return setting.parse(key, env.get(key) or setting.default)
    except ConfigError:
        return setting.default


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once (tests build their own with `Settings.from_env`)."""
    return Settings.from_env()
