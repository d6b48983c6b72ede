"""``validate`` and ``plan`` import none of the heavy libraries (a config check must stay
instant; the start-up time itself is a benchmark: benchmarks/validate_startup.py)."""

from __future__ import annotations

import sys

import pytest

from recomart_pipeline_tests.helpers import benchmark_module

validate_startup = benchmark_module("validate_startup")


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["plan", "--json"]])
def test_config_commands_import_nothing_heavy(command):
    cli = [sys.executable, "-m", "recomart_pipeline", *command, "pipeline_config.yaml"]
    assert validate_startup.heavy_imports(cli) == []


def test_the_check_sees_a_heavy_import():
    """The check above can fail: a command that imports numpy is caught."""
    assert validate_startup.heavy_imports([sys.executable, "-c", "import numpy"]) == ["numpy"]
