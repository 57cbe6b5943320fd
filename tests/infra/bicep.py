"""Reading infra/*.bicep with pycep (checkov's own Bicep parser): no Bicep compiler
installs here, so the tests read the parsed files.

pycep's first parser on a machine builds lark's LALR tables for the Bicep grammar (about
20 s of CPU) and caches them under the temp folder (checkov's pycep uses the same cache
file); later parsers load them in about 0.5 s. So one parser serves the whole process,
and every test that parses Bicep, checkov's included, runs in the xdist group
`BICEP_GROUP`: one worker builds the tables once, instead of several at the same time."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

from shared.settings import ROOT

INFRA = ROOT / "infra"
BICEP_GROUP = "bicep-parser"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def parser() -> BicepParser:
    return BicepParser()


@cache
def parsed(path: Path) -> dict[str, Any]:
    return parser().parse(file_path=path)


def modules(path: Path) -> dict[str, dict[str, Any]]:
    return parsed(path).get("modules", {})


def registry_module(path: Path, avm_path: str) -> dict[str, Any]:
    """The one module in `path` that uses `avm/res/<avm_path>`: its params."""
    found = [
        m["config"]["params"]
        for m in modules(path).values()
        if m["type"] == "bicep_registry_alias" and m["detail"]["path"] == f"avm/res/{avm_path}"
    ]
    assert len(found) == 1, f"{path.name}: expected one avm/res/{avm_path} module, got {found}"
    return found[0]


def object_keys(value: Any) -> set[str]:
    """Keys of a Bicep object literal as pycep gives it (a dict)."""
    assert isinstance(value, dict), value
    return set(value)


def dotted(value: Any) -> Any:
    """A property access as text (`storage.outputs.resourceId`); anything else as is."""
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        operands = value["operator"]["operands"]
        return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"
    return value
