"""First imports on several threads at once cannot deadlock.

The app imports most of ``shared`` on first use (cold start), and a worker runs
invocations on several threads, so a cold instance's first invocations import the same
modules at once. Python takes one lock per module while it loads it, and a module being
loaded first loads its package: a thread that holds module A's lock and waits for B's,
while another holds B's and waits for A's, is a deadlock, which Python breaks by raising
``_DeadlockError`` (a RuntimeError) in one of them, and the invocation answers 500. A
package ``__init__`` that imports its own modules is enough: one thread imports the
package (which waits for its module ``jobs``), the other ``jobs`` (which waits for the
package).

So the graph of "may wait for" between module locks must have no cycle: a module's
top-level imports (each with its packages), and each module's own package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from shared.settings import ROOT


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(body: list[ast.stmt]):
    """Import statements that run when the module loads (not in functions, not under
    ``if TYPE_CHECKING``)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _type_checking(node.test):
                yield from _top_level_imports(node.body)
            yield from _top_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _top_level_imports(block)
            for handler in node.handlers:
                yield from _top_level_imports(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from _top_level_imports(node.body)


def _with_packages(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def lock_graph() -> dict[str, set[str]]:
    """Module of ``shared`` -> the modules of ``shared`` whose locks it may wait for."""
    files = {_module_name(p): p for p in (ROOT / "shared").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        waits = {name.rpartition(".")[0]} - {""}  # a module loads its package first
        for node in _top_level_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                waits.update(m for m in _with_packages(target) if m in files and m != name)
        graph[name] = waits
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_two_first_imports_can_wait_for_each_other() -> None:
    graph = lock_graph()
    assert "shared.jobs" in graph["shared.jobs.repository"]  # the graph sees packages
    found = [sorted(c) for c in cycles(graph)]
    assert not found, (
        "first imports of these modules on two threads at once can deadlock (a package "
        f"__init__ that imports its own modules, or an import cycle): {found}"
    )


#: What a cold instance's first invocations import (an upload, the blob trigger, a
#: queue job, a search), each on its own thread, all released at once.
FIRST_IMPORTS = (
    "shared.registry.repository",
    "shared.jobs.repository",
    "shared.embeddings.repository",
    "shared.db.connection",
    "shared.registry.service",
    "shared.jobs.runner",
    "shared.embeddings.service",
)

_PROBE = """
import importlib, sys, threading
names = sys.argv[1:]
start = threading.Barrier(len(names))
failed = []
def first_import(name):
    start.wait()
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
threads = [threading.Thread(target=first_import, args=(n,)) for n in names]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("\\n".join(failed))
"""


def test_a_cold_process_imports_on_several_threads_at_once() -> None:
    """With a cycle in that graph, every one of these runs raises _DeadlockError in some
    thread."""
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, *FIRST_IMPORTS],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert done.stdout.strip() == "", done.stdout
