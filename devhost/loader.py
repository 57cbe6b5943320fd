"""Import function_app.py and turn its indexed functions into specs the host can run.

`FunctionApp.get_functions()` may be called only once per app in azure-functions 1.x (a
second call raises), so the metadata is read here once and kept in `FunctionSpec`s.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func

SUPPORTED_TRIGGERS = ("httpTrigger", "queueTrigger", "blobTrigger")
_SETTING_REF = re.compile(r"%([^%]+)%")
_LITERAL_FIELDS = {"name", "type", "direction"}


@dataclass(frozen=True)
class FunctionSpec:
    """One function: its callable plus the binding metadata Azure would read."""

    name: str
    func: Callable[..., Any]
    trigger: dict[str, Any]
    inputs: tuple[dict[str, Any], ...] = ()
    outputs: tuple[dict[str, Any], ...] = ()
    annotations: dict[str, Any] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    @property
    def returns_to_output(self) -> dict[str, Any] | None:
        """The `$return` output binding other than http, if any."""
        for binding in self.outputs:
            if binding["name"] == "$return":
                return binding
        return None


@dataclass(frozen=True)
class LoadedApp:
    """The imported module and the functions the host will run."""

    module: ModuleType
    functions: tuple[FunctionSpec, ...]
    skipped: tuple[tuple[str, str], ...]  # (function name, reason)


def resolve_settings(value: str, environ: Mapping[str, str]) -> str:
    """Replace Azure's `%SettingName%` binding expressions with app settings."""

    def lookup(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in environ:
            raise KeyError(f"app setting {key!r} (referenced as %{key}%) is not set")
        return environ[key]

    return _SETTING_REF.sub(lookup, value)


def _resolve_binding(binding: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    return {
        k: resolve_settings(v, environ) if isinstance(v, str) and k not in _LITERAL_FIELDS else v
        for k, v in binding.items()
    }


def import_script(script: Path) -> ModuleType:
    """Import the script as module `function_app`, with its folder on sys.path."""
    script = script.resolve()
    folder = str(script.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location("function_app", script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("function_app", None)
        raise
    return module


def find_app(module: ModuleType) -> func.FunctionRegister:
    """The module's one FunctionApp (the Python worker accepts exactly one)."""
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    unique = list({id(a): a for a in apps}.values())
    if not unique:
        raise LookupError(f"{module.__file__} defines no FunctionApp instance")
    if len(unique) > 1:
        raise LookupError(f"{module.__file__} defines {len(unique)} FunctionApp instances")
    return unique[0]


def _annotations(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved type hints; the raw (maybe string) annotations when hints cannot resolve."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {
            name: p.annotation
            for name, p in inspect.signature(fn).parameters.items()
            if p.annotation is not inspect.Parameter.empty
        }


def _disabled(name: str, environ: Mapping[str, str]) -> bool:
    flag = environ.get(f"AzureWebJobs.{name}.Disabled", "")
    return flag.strip().lower() in ("1", "true")


def build_spec(fn: Any, environ: Mapping[str, str]) -> FunctionSpec:
    """FunctionSpec from one azure.functions Function object."""
    name = fn.get_function_name()
    user_function = fn.get_user_function()
    bindings = json.loads(fn.get_function_json())["bindings"]
    bindings = [_resolve_binding(b, environ) for b in bindings]
    triggers = [b for b in bindings if str(b["type"]).endswith("Trigger")]
    if len(triggers) != 1:
        raise ValueError(f"function {name} has {len(triggers)} triggers")
    inputs = [
        b for b in bindings if b.get("direction") == "IN" and not b["type"].endswith("Trigger")
    ]
    outputs = [b for b in bindings if b.get("direction") == "OUT" and b["type"] != "http"]
    params = tuple(inspect.signature(user_function).parameters)
    return FunctionSpec(
        name=name,
        func=user_function,
        trigger=triggers[0],
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        annotations=_annotations(user_function),
        parameters=params,
    )


def load_app(
    script: Path, environ: Mapping[str, str] | None = None, only: tuple[str, ...] | None = None
) -> LoadedApp:
    """Import the script once and index its functions (host.json "functions" filters)."""
    env = os.environ if environ is None else environ
    module = import_script(script)
    app = find_app(module)
    specs: list[FunctionSpec] = []
    skipped: list[tuple[str, str]] = []
    for fn in app.get_functions():  # once: a second call raises in azure-functions 1.x
        try:
            spec = build_spec(fn, env)
        except (KeyError, ValueError) as exc:  # e.g. a %setting% that is not set
            skipped.append((fn.get_function_name(), str(exc).strip("'\"")))
            continue
        if only is not None and spec.name not in only:
            skipped.append((spec.name, 'not listed in host.json "functions"'))
        elif _disabled(spec.name, env):
            skipped.append((spec.name, f"AzureWebJobs.{spec.name}.Disabled is set"))
        elif spec.trigger_type not in SUPPORTED_TRIGGERS:
            skipped.append((spec.name, f"{spec.trigger_type} is not run by the local host"))
        else:
            specs.append(spec)
    return LoadedApp(module, tuple(specs), tuple(skipped))
