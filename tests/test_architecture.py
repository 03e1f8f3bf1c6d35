"""The layout's rules, read from the source: no import cycle in harness/, each folder imports only what it may,
and no deep-learning framework anywhere in harness/ (lazy imports inside functions count too)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import harness

ROOT = Path(harness.__file__).resolve().parent
FRAMEWORKS = {"torch", "tensorflow", "paddle", "jax", "jaxlib", "keras"}
# folder -> folders of harness it must never import (the root package's modules are the shared contract)
FORBIDDEN = {
    "worker": {"orchestrator", "commands"},
    "orchestrator": {"commands"},
    "results": {"commands", "orchestrator", "worker"},
    "model": {"commands", "orchestrator", "worker", "results", "datasets", "hardware"},
    "datasets": {"commands", "orchestrator", "worker", "results", "model", "hardware"},
    "hardware": {"commands", "orchestrator", "worker", "results", "model", "datasets"},
    "testing": {"commands"},   # the conformance kit: it runs reference verify jobs with the orchestrator's job runner
    "": {"commands", "orchestrator", "worker", "results"},   # the plugin contract at the root
}
# the orchestrator talks to workers through their protocol only
ALLOWED = {("orchestrator", "harness.worker.protocol"), ("harness.__main__", "harness.commands.cli")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imports(name: str) -> set[str]:
    """Every module ``name`` imports (at module level or inside functions), as absolute names."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return out


def harness_edges(name: str) -> set[str]:
    return {m for m in imports(name) if m in MODULES and m != name}


def folder(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (ROOT / parts[1]).is_dir()) else ""


def test_modules_found():
    assert {"harness.commands.cli", "harness.orchestrator.plan", "harness.worker.jobs", "harness.model.graph",
            "harness.results.journal", "harness.plugin_base"} <= set(MODULES)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None
    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle({name: harness_edges(name) for name in MODULES})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_respects_the_layers(name: str):
    mine = folder(name)
    for target in harness_edges(name):
        if (mine, target) in ALLOWED or (name, target) in ALLOWED:
            continue
        assert folder(target) not in FORBIDDEN.get(mine, set()) or folder(target) == mine, \
            f"{name} ({mine or 'root'}) imports {target} ({folder(target)})"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_framework_import_in_harness(name: str):
    assert not {m.split(".")[0] for m in imports(name)} & FRAMEWORKS, f"{name} imports a deep-learning framework"


def test_the_checker_sees_lazy_imports_and_would_catch_a_cycle():
    """The rules above would fail: a function-level import is an edge, and a planted cycle is found."""
    assert "harness.worker.speed_cell" in harness_edges("harness.worker.jobs")   # imported inside a function
    assert folder("harness.orchestrator.run") == "orchestrator" and folder("harness.settings") == ""
    assert folder("harness.testing") == folder("harness.testing.wiring") == "testing"   # the kit's package too
    graph = {name: harness_edges(name) for name in MODULES}
    graph["harness.results.journal"] = graph["harness.results.journal"] | {"harness.orchestrator.run"}  # planted
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and "harness.results.journal" in cycle
