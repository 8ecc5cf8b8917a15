"""The import graph of the project's own packages: no circle, counting imports inside functions.

Every ``import`` and ``from ... import`` statement is read from the source
(``ast``), wherever it sits, so a lazy import cannot hide a back-edge. Edges
are drawn between modules, and again between the domain's groups
(``emotion.core``, ``emotion.audio``, ...): neither graph may have a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("emotion", "tasks", "flows", "deployments")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _targets(node: ast.AST, here: str, is_pkg: bool, known: set[str]) -> list[str]:
    """The project modules one import statement names (a ``from a import b`` names ``a.b`` when that is a module)."""
    out: list[str] = []
    if isinstance(node, ast.Import):
        out = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = here.split(".") if is_pkg else here.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        out = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
    return [t for t in out if t in known or any(k.startswith(t + ".") for k in known)]


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, anywhere in its source (functions included)."""
    mods = _modules()
    known = set(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in _targets(node, name, path.name == "__init__.py", known):
                    if t in known and t != name:
                        graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def group_of(module: str) -> str:
    """``emotion.audio.seed`` -> ``emotion.audio``; top-level domain modules and other packages are their own group."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_module_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_cycle_between_domain_groups() -> None:
    groups: dict[str, set[str]] = {}
    for mod, deps in import_graph().items():
        if not mod.startswith("emotion."):
            continue
        g = group_of(mod)
        groups.setdefault(g, set()).update(group_of(d) for d in deps if d.startswith("emotion.") and group_of(d) != g)
    cycle = find_cycle(groups)
    assert cycle is None, "groups of emotion/ import each other: " + " -> ".join(cycle or [])


def test_layers_point_one_way() -> None:
    """emotion/ never imports tasks/ or flows/; tasks/ never imports flows/."""
    for mod, deps in import_graph().items():
        if mod.startswith("emotion"):
            assert not [d for d in deps if d.split(".")[0] in ("tasks", "flows", "deployments")], mod
        if mod.startswith("tasks"):
            assert not [d for d in deps if d.split(".")[0] in ("flows", "deployments")], mod


def test_finds_a_cycle_it_is_shown() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("src,expected", [
    ("from emotion.core import ids\n", {"emotion.core.ids"}),
    ("def f():\n    from emotion.core.ids import parse\n", {"emotion.core.ids"}),
    ("import emotion.store.store as s\n", {"emotion.store.store"}),
])
def test_reads_imports_anywhere(src: str, expected: set[str]) -> None:
    known = {"emotion", "emotion.core", "emotion.core.ids", "emotion.store", "emotion.store.store"}
    found = {t for node in ast.walk(ast.parse(src)) if isinstance(node, (ast.Import, ast.ImportFrom))
             for t in _targets(node, "emotion.x", False, known)}
    assert found == expected
