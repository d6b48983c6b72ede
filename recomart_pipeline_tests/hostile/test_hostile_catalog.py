"""The suite's README lists every case it holds, so the catalogue cannot drift."""

from __future__ import annotations

import ast
import re
from pathlib import Path

HERE = Path(__file__).parent
TESTS = HERE.parent


def test_the_readme_lists_every_hostile_test():
    readme = (HERE / "README.md").read_text()
    missing = [
        f"{module.name}::{name}"
        for module in sorted(HERE.glob("test_*.py"))
        if module.name != Path(__file__).name
        for name in sorted(_test_names(module))
        if f"`{name}`" not in readme
    ]
    assert not missing, f"add these cases to {HERE / 'README.md'}: {missing}"


def _test_names(module: Path) -> set[str]:
    return {
        node.name
        for node in ast.parse(module.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_the_cases_listed_beside_their_features_exist():
    readme = (HERE / "README.md").read_text()
    listed = re.findall(r"`recomart_pipeline_tests/([\w/]+\.py)::(\w+)`", readme)
    assert listed, "the README lists no hostile cases beside their features"
    gone = [
        f"{path}::{name}"
        for path, name in listed
        if not (TESTS / path).is_file() or name not in _test_names(TESTS / path)
    ]
    assert not gone, f"listed in {HERE / 'README.md'} but no longer there: {gone}"
