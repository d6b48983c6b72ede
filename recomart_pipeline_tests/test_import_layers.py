"""The package's import graph, read from the source (AST): no cycles, and the layering of the
README's architecture section holds.

Function-level imports count (a lazy import is still a dependency); ``TYPE_CHECKING`` blocks
do not. Cycles are checked between modules and between the top-level parts of the package
(``runtime``, ``tracking``, …), so two packages cannot lean on each other through different
modules either.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "recomart_pipeline"
HEAVY = ("pandas", "numpy", "scipy", "numba", "pyarrow", "matplotlib", "sklearn", "dagster")
# (layer, what it must not import): the README's architecture section.
FORBIDDEN: list[tuple[str, str]] = [
    *((low, high) for low in ("contract",) for high in ("*",)),
    *(
        ("config", high)
        for high in ("runtime", "tasks", "ml", "orchestration", "serving", "deployment")
    ),
    *(("graph", high) for high in ("runtime", "tasks", "ml", "orchestration")),
    *(("ml", high) for high in ("config", "runtime", "tasks", "orchestration", "deployment")),
    *(("tasks", "orchestration"), ("runtime", "orchestration"), ("serving", "orchestration")),
    *(("runtime", high) for high in ("tasks", "tracking", "notify")),
    # engines run the data tasks' rules: a library below the tasks, like ml
    *(("engines", high) for high in ("config", "runtime", "tasks", "orchestration", "serving")),
]
# Layers that must never import dagster (only orchestration/ does).
DAGSTER_FREE = ("contract", "config", "graph", "runtime", "tasks", "ml", "serving", "engines")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    skipped = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    name = _module_name(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[
                    : len(name.split(".")) - node.level + (path.name == "__init__.py")
                ]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


@cache
def graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for target in _imports(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):
                targets.add(target)
        edges[name] = targets
    return edges


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_cycles():
    assert _cycles(graph()) == []


def test_no_cycles_between_parts_of_the_package():
    parts: dict[str, set[str]] = {}
    for module, targets in graph().items():
        parts.setdefault(_part(module), set()).update(
            _part(t) for t in targets if _part(t) != _part(module)
        )
    parts.pop("", None)
    assert _cycles({p: t - {""} for p, t in parts.items()}) == []


def test_layering():
    broken = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        for low, high in FORBIDDEN
        if _part(module) == low and (high == "*" or _part(target) == high) and _part(target) != low
    ]
    assert broken == []


@pytest.mark.parametrize("layer", DAGSTER_FREE)
def test_only_orchestration_imports_dagster(layer):
    users = (
        [
            str(path.relative_to(PACKAGE))
            for path in (PACKAGE / layer).rglob("*.py")
            if any(i.split(".")[0] == "dagster" for i in _imports(path))
        ]
        if (PACKAGE / layer).is_dir()
        else []
    )
    assert users == []


def test_the_contract_and_config_import_nothing_heavy_at_module_level():
    offenders = [
        f"{module}: {imported}"
        for module, path in ((m, PACKAGE.parent / (m.replace(".", "/") + ".py")) for m in graph())
        if _part(module) in ("contract", "config", "graph") and path.exists()
        for imported in _imports(path)
        if imported.split(".")[0] in HEAVY
    ]
    assert offenders == []


def test_the_checker_sees_a_cycle_and_a_forbidden_import():
    """The checks above can fail: a made-up graph with both defects is caught."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert _part("recomart_pipeline.runtime.runner") == "runtime"
