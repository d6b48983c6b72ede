"""``validate`` imports none of the heavy libraries (a config check must stay instant)."""

from __future__ import annotations

import importlib.util
import sys

from recomart_pipeline_tests.conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    "validate_startup", REPO_ROOT / "benchmarks" / "validate_startup.py"
)
assert spec and spec.loader
validate_startup = importlib.util.module_from_spec(spec)
sys.modules["validate_startup"] = validate_startup
spec.loader.exec_module(validate_startup)


def test_validate_imports_nothing_heavy():
    assert validate_startup.heavy_imports() == []


def test_the_check_sees_a_heavy_import(monkeypatch):
    """The check above can fail: a command that imports numpy is caught."""
    monkeypatch.setattr(
        validate_startup, "VALIDATE", [sys.executable, "-c", "import numpy", "--", "-"]
    )
    assert validate_startup.heavy_imports() == ["numpy"]
