"""The suite's README lists every case it holds, so the catalogue cannot drift."""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).parent


def test_the_readme_lists_every_hostile_test():
    readme = (HERE / "README.md").read_text()
    missing = [
        f"{module.name}::{node.name}"
        for module in sorted(HERE.glob("test_*.py"))
        if module.name != Path(__file__).name
        for node in ast.parse(module.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        if f"`{node.name}`" not in readme
    ]
    assert not missing, f"add these cases to {HERE / 'README.md'}: {missing}"
