"""host.json parsing: the subset of settings the local host honours, with Azure's defaults.

Kept free of I/O beyond reading the file so the defaults and the TimeSpan grammar can be
unit-tested on their own.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# .NET TimeSpan "[-][d.]hh:mm[:ss[.fffffff]]"; a bare integer means days, as in .NET.
_TIMESPAN = re.compile(
    r"^(?P<neg>-)?(?:(?P<days>\d+)\.)?(?P<h>\d+):(?P<m>\d+)(?::(?P<s>\d+)(?:\.(?P<frac>\d+))?)?$"
)


def parse_timespan(value: Any) -> float:
    """Seconds from a host.json TimeSpan ("hh:mm:ss", "00:00:00.5", "1.02:00:00", "-1").

    JSON numbers are taken as seconds. Raises ValueError on anything else, so a typo in
    host.json stops the host instead of silently running with a default.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a TimeSpan: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a TimeSpan: {value!r}")
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text) * 86400.0
    match = _TIMESPAN.match(text)
    if not match:
        raise ValueError(f"not a TimeSpan: {value!r}")
    h, m = int(match["h"]), int(match["m"])
    s = int(match["s"] or 0)
    if h > 23 or m > 59 or s > 59:
        raise ValueError(f"TimeSpan field out of range: {value!r}")
    seconds = int(match["days"] or 0) * 86400 + h * 3600 + m * 60 + s
    if match["frac"]:
        seconds += float("0." + match["frac"])
    return -float(seconds) if match["neg"] else float(seconds)


@dataclass(frozen=True)
class QueueOptions:
    """extensions.queues, with the Storage extension 5.x defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"


@dataclass(frozen=True)
class HostConfig:
    """What the local host needs from host.json."""

    route_prefix: str = "api"
    custom_headers: tuple[tuple[str, str], ...] = ()  # extensions.http.customHeaders
    function_timeout: float | None = None  # None: unset or unlimited (-1); not enforced
    queues: QueueOptions = field(default_factory=QueueOptions)
    blob_parallelism: int = 8
    poison_blob_threshold: int = 5
    functions: tuple[str, ...] | None = None  # host.json "functions": only these run
    log_level: str = "Information"
    azure_log_level: str = "Warning"


def _int(section: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"host.json: {key} must be an integer in [{low}, {high}], got {value!r}")
    return value


def parse_queue_options(section: dict[str, Any]) -> QueueOptions:
    """extensions.queues → QueueOptions; newBatchThreshold defaults to batchSize / 2."""
    batch = _int(section, "batchSize", 16, 1, 32)
    threshold = _int(section, "newBatchThreshold", batch // 2, 0, 10_000)
    polling = parse_timespan(section.get("maxPollingInterval", "00:01:00"))
    if polling < 0.1:
        raise ValueError("host.json: maxPollingInterval must be at least 00:00:00.1")
    visibility = parse_timespan(section.get("visibilityTimeout", "00:00:00"))
    if visibility < 0:
        raise ValueError("host.json: visibilityTimeout must not be negative")
    encoding = str(section.get("messageEncoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise ValueError(f"host.json: messageEncoding must be base64 or none, got {encoding!r}")
    return QueueOptions(
        batch_size=batch,
        new_batch_threshold=threshold,
        max_polling_interval=polling,
        visibility_timeout=visibility,
        max_dequeue_count=_int(section, "maxDequeueCount", 5, 1, 10_000),
        message_encoding=encoding,
    )


def parse_host_config(data: dict[str, Any]) -> HostConfig:
    """host.json document → HostConfig."""
    extensions = data.get("extensions") or {}
    http = extensions.get("http") or {}
    prefix = http.get("routePrefix", "api")
    if not isinstance(prefix, str):
        raise ValueError("host.json: extensions.http.routePrefix must be a string")
    timeout = data.get("functionTimeout")
    function_timeout = None
    if timeout is not None:
        seconds = parse_timespan(timeout)
        function_timeout = seconds if seconds > 0 else None
    headers = http.get("customHeaders") or {}
    if not isinstance(headers, dict):
        raise ValueError("host.json: extensions.http.customHeaders must be an object")
    queues = parse_queue_options(extensions.get("queues") or {})
    blobs = extensions.get("blobs") or {}
    functions = data.get("functions")
    log_levels = (data.get("logging") or {}).get("logLevel") or {}
    return HostConfig(
        route_prefix=prefix.strip("/"),
        custom_headers=tuple((str(k), str(v)) for k, v in headers.items()),
        function_timeout=function_timeout,
        queues=queues,
        blob_parallelism=_int(blobs, "maxDegreeOfParallelism", 8, 1, 512),
        # Storage extension 5.x setting; without it, the queues' maxDequeueCount applies
        poison_blob_threshold=_int(
            blobs, "poisonBlobThreshold", queues.max_dequeue_count, 1, 10_000
        ),
        functions=tuple(functions) if isinstance(functions, list) else None,
        log_level=str(log_levels.get("default", "Information")),
        azure_log_level=str(log_levels.get("Azure.Core", "Warning")),
    )


OVERRIDE_PREFIX = "AzureFunctionsJobHost__"


def apply_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """App settings named `AzureFunctionsJobHost__<path>` override host.json values, as in
    Azure (e.g. `AzureFunctionsJobHost__extensions__queues__batchSize=4`). Keys match
    case-insensitively; a value replacing a number or boolean is converted to its type."""
    for name, raw in environ.items():
        if not name.startswith(OVERRIDE_PREFIX) or len(name) == len(OVERRIDE_PREFIX):
            continue
        *parents, leaf = name[len(OVERRIDE_PREFIX) :].split("__")
        node = data
        for part in parents:
            key = next((k for k in node if k.lower() == part.lower()), part)
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        key = next((k for k in node if k.lower() == leaf.lower()), leaf)
        node[key] = _coerce(raw, node.get(key))
    return data


def _coerce(raw: str, current: Any) -> Any:
    if isinstance(current, bool) or raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if isinstance(current, int) or (current is None and raw.lstrip("-").isdigit()):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"host.json override: {raw!r} is not an integer") from None
    return raw


def load_host_config(folder: Path, environ: Mapping[str, str] | None = None) -> HostConfig:
    """Read folder/host.json (a missing file means all defaults, as in Azure), then apply
    `AzureFunctionsJobHost__...` overrides from the environment."""
    path = folder / "host.json"
    data = json.loads(path.read_text(encoding="utf-8-sig")) if path.exists() else {}
    data = apply_overrides(data, os.environ if environ is None else environ)
    return parse_host_config(data) if data else HostConfig()
