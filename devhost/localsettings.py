"""local.settings.json: the app settings a developer keeps next to function_app.py.

Core Tools copies "Values" into the worker's environment before the app is imported;
variables already set in the environment win, so a shell or CI can override a value.
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LocalSettings:
    """What local.settings.json contributed."""

    applied: tuple[str, ...] = ()
    local_http_port: int | None = None
    values: dict[str, str] = field(default_factory=dict)


def load_local_settings(
    folder: Path, environ: MutableMapping[str, str] | None = None
) -> LocalSettings:
    """Copy "Values" from folder/local.settings.json into `environ` (default os.environ)."""
    env = os.environ if environ is None else environ
    path = folder / "local.settings.json"
    if not path.exists():
        return LocalSettings()
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    values = {str(k): "" if v is None else str(v) for k, v in (data.get("Values") or {}).items()}
    applied = []
    for key, value in values.items():
        if key not in env:
            env[key] = value
            applied.append(key)
    port = (data.get("Host") or {}).get("LocalHttpPort")
    return LocalSettings(tuple(applied), int(port) if port else None, values)
