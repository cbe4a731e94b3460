"""The agents' modules import one way: no module of agents/ reaches, directly or through others, back to itself.

Read from the source (every import, also those inside functions, which keep start-up light but must not
hide a cycle), and checked by importing each module first in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

AGENTS = Path(__file__).resolve().parents[1] / "agents"
MODULES = sorted(p.stem for p in AGENTS.glob("*.py") if p.stem != "__init__")


def _imports(module: str) -> set[str]:
    """The agents' modules ``module`` imports anywhere in its source (in functions and for type checking too)."""
    found = set()
    for node in ast.walk(ast.parse((AGENTS / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "poise.agents":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("poise.agents."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("poise.agents.")}
    return found & set(MODULES)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a path that ends where it starts), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            if found := visit(imported, [*path, module]):
                return found
        done.add(module)
        return None

    return next((c for m in sorted(graph) if (c := visit(m, []))), None)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_inside_agents():
    graph = {module: _imports(module) for module in MODULES}
    assert {"runner", "lifecycle_graph", "recovery_graph", "nodes"} <= set(graph)
    assert _cycle(graph) is None


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    subprocess.run([sys.executable, "-c", f"import poise.agents.{module}"], check=True, timeout=120)
