"""Settings from the environment: the same keys as local.settings.json "Values".

Each setting is one typed field of `Settings`, named in the environment by its alias,
with its default, its bounds and its validation next to it; values are matched to
fields by key, never by position.

Locally every setting has a default that makes the run (Azurite + SQLite) work with no
configuration at all. In Azure (`WEBSITE_INSTANCE_ID` is set) nothing falls back to a
local default: the app folder is read-only and there is no emulator, so the SQL
connection must be set, local folders default to /tmp, and caches default to a share
of the instance's memory. An invalid value raises `ConfigError` naming the setting's
key. A missing required one is reported by the part that needs it (`Settings.require`),
so functions that do not need it keep working and the worker still indexes every
function. A blank value counts as unset.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]
AZURE_DATA_DIR = Path("/tmp/hartonomous")  # the one writable place in Azure
MiB = 1024 * 1024


def in_azure(environ: Mapping[str, str] | None = None) -> bool:
    """The Functions host in Azure sets WEBSITE_INSTANCE_ID; nothing local does."""
    env = os.environ if environ is None else environ
    return bool(env.get("WEBSITE_INSTANCE_ID", "").strip())


class ConfigError(ConfigurationError):
    """A setting has a value the app cannot use; ``field`` and ``setting`` name it."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"setting {setting}: {reason}", field=setting, reason=reason)
        self.setting = setting


def _not_an_integer(raw: object) -> str:
    return f"expected an integer, got {raw!r}"


def _out_of_range(lo: object, hi: object, value: object) -> str:
    return f"must be between {lo} and {hi}, got {value}"


def instance_memory_bytes(
    environ: Mapping[str, str] | None = None, cgroup_root: Path = Path("/sys/fs/cgroup")
) -> int:
    """Memory this instance may use: `INSTANCE_MEMORY_MB` if set, else the cgroup limit
    (how Flex Consumption enforces its 512, 2048 or 4096 MB), else physical memory."""
    env = os.environ if environ is None else environ
    override = env.get("INSTANCE_MEMORY_MB", "").strip()
    if override:
        try:
            mb = int(override)
        except ValueError:
            raise ConfigError("INSTANCE_MEMORY_MB", _not_an_integer(override)) from None
        if not 128 <= mb <= 1024 * 1024:
            raise ConfigError("INSTANCE_MEMORY_MB", _out_of_range(128, 1024 * 1024, mb))
        return mb * MiB
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in (cgroup_root / "memory.max", cgroup_root / "memory/memory.limit_in_bytes"):
        try:
            raw = limit_file.read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and 0 < int(raw) < physical:
            return int(raw)
    return physical


def usable_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may keep busy: the CPUs it may run on, capped by a cgroup CPU
    quota rounded up (how Flex Consumption gives a 2048 MB instance one core's worth,
    and a 512 MB one a quarter, whatever the host's CPU count). Thread pools sized by
    ``os.cpu_count()`` instead would run more threads than there is CPU time for."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity call on this platform
        cores = os.cpu_count() or 1
    quota = _cpu_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def _cpu_quota(cgroup_root: Path) -> float | None:
    """The cgroup's CPU quota in cores (v2 ``cpu.max``, v1 ``cfs_quota_us``), or None."""
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((cgroup_root / "cpu/cpu.cfs_quota_us").read_text())
        period = int((cgroup_root / "cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def azure_name(value: str) -> str:
    """Container and queue names: Azure's rules (3-63 chars, lowercase, digits, hyphens)."""
    ok = (
        3 <= len(value) <= 63
        and value[0].isalnum()
        and value[-1].isalnum()
        and all(c.islower() or c.isdigit() or c == "-" for c in value)
        and "--" not in value
    )
    if not ok:
        raise ValueError(f"{value!r} is not a valid container/queue name (3-63 of a-z, 0-9, '-')")
    return value


AzureName = Annotated[str, AfterValidator(azure_name)]


@dataclass(frozen=True)
class LocalDefault:
    """Field metadata: off Azure, this default instead of the field's own (which then
    applies only in Azure, where `None` means required)."""

    value: str


@dataclass(frozen=True)
class MemoryShare:
    """Field metadata: the default is this share of the instance's memory, capped."""

    fraction: float
    cap: int

    def of(self, environ: Mapping[str, str]) -> int:
        return max(MiB, min(self.cap, int(instance_memory_bytes(environ) * self.fraction)))


@dataclass(frozen=True)
class Instance:
    """Field metadata: a fact about the instance the app runs on, which the defaults
    depend on; not an app setting (the README and the sample settings list those)."""


class Settings(BaseSettings):
    """The app's settings. Each field's alias is its environment key; a `LocalDefault`
    or `MemoryShare` in its annotation is a default that depends on the instance."""

    model_config = SettingsConfigDict(
        case_sensitive=True,  # keys are exact, as app settings are on Linux
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        str_strip_whitespace=True,
    )

    azure: Annotated[bool, Instance()] = Field(
        False,
        alias="WEBSITE_INSTANCE_ID",
        description="Running in Azure: the Functions host sets WEBSITE_INSTANCE_ID there "
        "and nothing local does. No local default applies.",
    )
    instance_memory_mb: Annotated[int | None, Instance()] = Field(
        None,
        alias="INSTANCE_MEMORY_MB",
        ge=128,
        le=1024 * 1024,
        description="The memory the cache defaults are shares of; unset: the cgroup limit, "
        "else physical memory.",
    )
    sql_connection: Annotated[str | None, LocalDefault("sqlite:///.data/hartonomous.db")] = Field(
        None,
        alias="SQL_CONNECTION_STRING",
        description="sqlite:///<path> (embedded), or an ODBC string (SQL Server / Azure SQL "
        "via pyodbc). Required in Azure.",
    )
    models_container: AzureName = Field(
        "models",
        alias="MODELS_CONTAINER",
        description="Blob container users upload models to (the blob trigger watches it).",
    )
    model_versions_container: AzureName = Field(
        "model-versions",
        alias="MODEL_VERSIONS_CONTAINER",
        description="Blob container of registered versions, immutable: <name>/<sha256>.onnx.",
    )
    # Not the container users upload to (MODELS_CONTAINER): POST /api/models bodies are
    # staged here, where no trigger fires, until they are registered.
    upload_staging_container: AzureName = Field(
        "model-uploads",
        alias="MODEL_UPLOADS_CONTAINER",
        description="Blob container staging POST /api/models bodies while they are "
        "registered; no trigger fires here.",
    )
    ingestion_queue: AzureName = Field(
        "ingestion-jobs",
        alias="INGESTION_QUEUE",
        description="Queue that carries ingestion jobs.",
    )
    ingest_container: AzureName = Field(
        "ingest",
        alias="INGEST_CONTAINER",
        description="Blob container for embeddings batch files (.npy + .json ids, or .jsonl).",
    )
    data_dir: Annotated[Path, LocalDefault(".data")] = Field(
        AZURE_DATA_DIR,
        alias="DATA_DIR",
        description="Local folder for the model cache and tokenizers (and the local SQLite "
        "file). A relative path resolves against the project folder locally and "
        "/tmp/hartonomous in Azure.",
    )
    max_request_bytes: int = Field(
        16 * MiB,
        alias="MAX_REQUEST_BYTES",
        ge=1024,
        le=1024 * MiB,
        description="Largest JSON request body the API accepts.",
    )
    max_upload_bytes: int = Field(
        2048 * MiB,
        alias="MAX_UPLOAD_BYTES",
        ge=1024,
        le=64 * 1024 * MiB,
        description="Largest model: POST /api/models refuses a bigger body; ingestion fails "
        "a bigger blob.",
    )
    max_vector_dim: int = Field(
        4096, alias="MAX_VECTOR_DIM", ge=1, le=65536, description="Largest vector dimension."
    )
    max_batch_rows: int = Field(
        10000,
        alias="MAX_BATCH_ROWS",
        ge=1,
        le=10_000_000,
        description="Most vectors (rows) in one request.",
    )
    model_cache_bytes: Annotated[int, MemoryShare(0.5, 4096 * MiB)] = Field(
        alias="MODEL_CACHE_BYTES",
        ge=MiB,
        le=1024 * 1024 * MiB,
        description="Local model file cache size (LRU, sha256-verified). Default: half the "
        "instance memory, at most 4 GiB.",
    )
    search_cache_bytes: Annotated[int, MemoryShare(0.25, 4096 * MiB)] = Field(
        alias="SEARCH_CACHE_BYTES",
        ge=MiB,
        le=1024 * 1024 * MiB,
        description="Memory for in-memory search matrices (least recently searched sets go "
        "first). Default: a quarter of the instance memory, at most 4 GiB.",
    )
    buffer_pool_bytes: Annotated[int, MemoryShare(0.125, 256 * MiB)] = Field(
        alias="BUFFER_POOL_BYTES",
        ge=MiB,
        le=1024 * 1024 * MiB,
        description="Most memory idle pooled buffers keep for reuse by the vector hot paths. "
        "Default: an eighth of the instance memory, at most 256 MiB.",
    )
    search_compress_from_rows: int = Field(
        20000,
        alias="SEARCH_COMPRESS_FROM_ROWS",
        ge=1,
        le=2**31 - 1,
        description="Sets with at least this many rows are searched compressed (int8 codes "
        "resident, float32 rows memory-mapped under DATA_DIR); smaller ones stay float32.",
    )
    search_snapshots_container: AzureName = Field(
        "search-snapshots",
        alias="SEARCH_SNAPSHOTS_CONTAINER",
        description="Blob container for snapshots of compressed search sets (fast cold "
        "loads). Created on first write.",
    )
    search_snapshot_settle_seconds: int = Field(
        30,
        alias="SEARCH_SNAPSHOT_SETTLE_SECONDS",
        ge=0,
        le=86400,
        description="A set loaded from SQL is snapshotted once its version has held this long.",
    )
    api_keys: SecretStr | None = Field(
        None,
        alias="API_KEYS",
        description="Comma-separated keys the OpenAI-compatible routes (/api/v1/...) accept "
        "as Authorization: Bearer <key>. Unset: the local host's LOCAL_FUNCTION_KEYS and "
        "LOCAL_MASTER_KEY. In Azure, a Key Vault reference to the key the deployment made.",
    )
    batch_max_size: int = Field(
        16,
        alias="BATCH_MAX_SIZE",
        ge=1,
        le=1024,
        description="Most rows one dynamic batch of concurrent calls holds (query vectors of "
        "single-query searches of one set and metric; texts of text-embedding calls of one "
        "model; input rows of inference calls of one model version); 1 turns dynamic "
        "batching off. A model's registration may set its own (batch_max_size).",
    )
    batch_max_delay_ms: float = Field(
        0.0,
        alias="BATCH_MAX_DELAY_MS",
        ge=0,
        le=1000,
        description="How long a call that finds no batch of its key running waits for "
        "others to join it (calls arriving while a batch runs always gather into the next).",
    )
    batch_max_queue: int = Field(
        256,
        alias="BATCH_MAX_QUEUE",
        ge=1,
        le=100000,
        description="Calls queued or running per batch key (one set and metric) on one "
        "instance; past it a call gets 429 with Retry-After.",
    )
    sql_busy_timeout_ms: int = Field(
        10000,
        alias="SQL_BUSY_TIMEOUT_MS",
        ge=100,
        le=600_000,
        description="How long an embedded SQLite write waits for other writers before the "
        "request answers 503 with Retry-After.",
    )
    max_sessions: int = Field(
        4,
        alias="MAX_SESSIONS",
        ge=1,
        le=256,
        description="ONNX sessions kept loaded (LRU), inference and text embedding together.",
    )

    @field_validator("azure", mode="before")
    @classmethod
    def _any_instance_id(cls, value: Any) -> Any:
        return bool(value.strip()) if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment only: the Functions host (and devhost) put local.settings.json's
        # Values there. No .env file or secrets folder is read behind the host's back.
        return init_settings, env_settings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` alone (default: the process environment, read by
        pydantic-settings); `ConfigError` naming the key of the first invalid value."""
        try:
            if environ is None:
                return cls()
            # Every key is passed, blank when absent (blank means unset), so nothing in
            # the process environment shows through the given mapping.
            return cls(**{key: environ.get(key, "") for key in _KEYS})
        except ValidationError as err:
            raise _config_error(err) from None

    @model_validator(mode="before")
    @classmethod
    def _defaults_for_where_it_runs(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        values = {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        instance = {k: v for k in _INSTANCE_KEYS if isinstance(v := values.get(k), str)}
        for field in cls.model_fields.values():
            key = _key(field)
            if key not in values and _has_computed_default(field):
                values[key] = _default(field, instance)
        if "DATA_DIR" in values:
            # A relative path never lands in the app folder in Azure: it is read-only there.
            base = AZURE_DATA_DIR if in_azure(instance) else ROOT
            values["DATA_DIR"] = base / Path(str(values["DATA_DIR"]).strip())
        return values

    @model_validator(mode="after")
    def _checked_for_where_it_runs(self) -> Settings:
        if self.azure and self.sql_connection and _relative_sqlite(self.sql_connection):
            raise ConfigError(
                "SQL_CONNECTION_STRING",
                "a relative SQLite path points into the app folder, which is read-only in "
                "Azure: use Azure SQL (an ODBC connection string) or an absolute path",
            )
        return self

    def require(self, field: str) -> Any:
        """A setting the caller cannot work without: ConfigError naming it when unset."""
        value = getattr(self, field)
        if value is None:
            where = "in Azure (WEBSITE_INSTANCE_ID is set)" if self.azure else "here"
            key = _key(type(self).model_fields[field])
            raise ConfigError(key, f"is required {where} and not set")
        return value

    @property
    def poison_queue(self) -> str:
        return f"{self.ingestion_queue}-poison"


def _key(field: FieldInfo) -> str:
    assert field.alias is not None, "every setting names its environment key"
    return field.alias


_KEYS = tuple(_key(field) for field in Settings.model_fields.values())
_INSTANCE_KEYS = tuple(
    _key(field)
    for field in Settings.model_fields.values()
    if any(isinstance(m, Instance) for m in field.metadata)
)


def _has_computed_default(field: FieldInfo) -> bool:
    return any(isinstance(m, LocalDefault | MemoryShare) for m in field.metadata)


def _default(field: FieldInfo, environ: Mapping[str, str]) -> Any:
    """The value a setting takes where `environ` applies and its key is unset (None:
    required there). Only the instance's keys in `environ` matter."""
    for marker in field.metadata:
        if isinstance(marker, LocalDefault) and not in_azure(environ):
            return marker.value
        if isinstance(marker, MemoryShare):
            return marker.of(environ)
    return field.get_default(call_default_factory=True)


def _relative_sqlite(url: str) -> bool:
    prefix = "sqlite:///"
    return url.lower().startswith(prefix) and not url[len(prefix) :].startswith("/")


def _config_error(err: ValidationError) -> ConfigError:
    """The first problem, as `setting <KEY>: <reason>` (the key, never the attribute)."""
    first = err.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):
        return cause
    key = str(first["loc"][0]) if first["loc"] else "settings"
    kind, raw = first["type"], first.get("input")
    if isinstance(cause, Exception):
        reason = str(cause)
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        reason = _not_an_integer(raw)
    elif kind in ("greater_than_equal", "less_than_equal"):
        lo, hi = _bounds(key)
        reason = _out_of_range(lo, hi, str(raw).strip())
    else:
        reason = first["msg"]
    return ConfigError(key, reason)


def _bounds(key: str) -> tuple[object, object]:
    field = next(f for f in Settings.model_fields.values() if f.alias == key)
    lo = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    hi = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    return lo, hi


@dataclass(frozen=True)
class Setting:
    """One app setting as an operator sees it: the README table and
    local.settings.sample.json list every one."""

    key: str
    attribute: str
    description: str

    def default_for(self, environ: Mapping[str, str]) -> Any:
        """The value this setting takes where `environ` applies and it is unset (None:
        required there)."""
        return _default(Settings.model_fields[self.attribute], environ)


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(_key(field), name, field.description or "")
    for name, field in Settings.model_fields.items()
    if _key(field) not in _INSTANCE_KEYS
)
_BY_KEY = {s.key: s for s in SETTINGS}


def binding_name(key: str, environ: Mapping[str, str] | None = None) -> str:
    """A container or queue name for a trigger decorator, read at import time.

    With worker indexing the Python worker reports binding metadata to the host, so a
    value computed here is what the host listens on, in Azure and locally, defaults
    included. Import must never fail ("0 functions found"): an invalid value falls
    back to the default here, and `get_settings()` reports it on first use.
    """
    default = _BY_KEY[key].default_for({})
    assert isinstance(default, str), f"{key} is not a container or queue name"
    env = os.environ if environ is None else environ
    raw = env.get(key, "").strip()
    try:
        return azure_name(raw) if raw else default
    except ValueError:
        return default


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once (tests build their own with `Settings.from_env`)."""
    return Settings.from_env()
