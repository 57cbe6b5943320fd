"""The package's layout rules, read from the source: no import cycle between modules or
between packages, infrastructure imports no feature, a feature imports only features
below it, and routes reach only their own feature (and the HTTP kit)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shared.settings import ROOT

SHARED = ROOT / "shared"

#: Infrastructure: what every feature may use; none of it imports a feature.
INFRASTRUCTURE = (
    "batching",
    "db",
    "errors",
    "http",
    "json_input",
    "memory",
    "process_exit",
    "public_text",
    "settings",
    "storage",
    "telemetry",
)
#: Features, lowest first: each may import only those before it.
FEATURES = (
    "vectors",
    "jobs",
    "registry",
    "inference",
    "search",
    "embeddings",
    "rerank",
    "analytics",
    "monitoring",
    "health",
)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(SHARED.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module of `shared` that `name` imports, at any depth of its code (imports
    inside functions and under TYPE_CHECKING count: they are dependencies too)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            targets = subs or [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and target != "shared":
                found.add(target)
    return found


GRAPH = {name: imports(name) for name in MODULES}


def area(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_area_is_named_in_the_layers():
    areas = {area(m) for m in MODULES if m != "shared"}
    assert areas == set(INFRASTRUCTURE) | set(FEATURES)


def test_no_import_cycle_between_modules():
    assert cycle(GRAPH) is None


def test_no_import_cycle_between_packages():
    packages: dict[str, set[str]] = {}
    for name, targets in GRAPH.items():
        if name == "shared":
            continue
        packages.setdefault(area(name), set()).update(
            area(t) for t in targets if area(t) != area(name)
        )
    assert cycle(packages) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_down_the_layers(name):
    if name == "shared":
        return
    here = area(name)
    bad = []
    for target in GRAPH[name]:
        there = area(target)
        if there == here or there in INFRASTRUCTURE:
            continue
        if here in INFRASTRUCTURE:
            bad.append(f"{target} (infrastructure imports no feature)")
        elif FEATURES.index(there) > FEATURES.index(here):
            bad.append(f"{target} (a feature above {here})")
    assert not bad, f"{name} imports " + ", ".join(sorted(bad))


#: Besides the HTTP kit, routes may read the name rules (a route checks the names in its
#: path) and lower features' wire formats (how vectors are written in JSON), never
#: another feature's service or storage.
ROUTE_HELPERS = {"shared.storage.names"}
WIRE_FORMATS = (".codec", ".shapes")
ROUTES = sorted(n for n in MODULES if n.rpartition(".")[2].endswith("routes"))


@pytest.mark.parametrize("name", ROUTES)
def test_routes_reach_only_their_own_feature(name):
    here = area(name)
    allowed = {here, "http", "settings", "errors", "telemetry", "json_input"}
    bad = sorted(
        t
        for t in GRAPH[name]
        if area(t) not in allowed and t not in ROUTE_HELPERS and not t.endswith(WIRE_FORMATS)
    )
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("name", ROUTES)
def test_routes_use_no_repository(name):
    bad = sorted(t for t in GRAPH[name] if t.rpartition(".")[2] == "repository")
    assert not bad, f"{name} imports {bad}"
