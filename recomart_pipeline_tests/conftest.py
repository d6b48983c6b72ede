"""Shared fixtures: throwaway projects with a config file and the sample task functions."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from recomart_pipeline.contract.catalog import ALLOWED_PACKAGES_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = "recomart_pipeline_tests.sample_tasks"
# The test projects name the suite's own task functions in `callable:`; the operator's way
# of trusting a package (every CLI and Dagster process the tests start inherits it).
TEST_TASK_PACKAGES = "recomart_pipeline_tests"
os.environ[ALLOWED_PACKAGES_ENV] = TEST_TASK_PACKAGES


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config (dedented) into a fresh project folder and return its path."""

    def write(text: str, name: str = "pipeline_config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


@pytest.fixture
def sample_project(write_config: Callable[..., Path]) -> Path:
    """A diamond: numbers -> (square, copy) -> total, plus an independent flaky task."""
    return write_config(
        f"""
        pipeline:
          name: sample
        retry_policy:
          max_backoff: 0.2
          jitter: 0
        tasks:
          numbers:
            callable: "{SAMPLE}:make_numbers"
            config: {{count: 4}}
          square:
            callable: "{SAMPLE}:square"
            depends_on: [numbers]
          square_again:
            callable: "{SAMPLE}:square"
            depends_on: [numbers]
          total:
            callable: "{SAMPLE}:total"
            depends_on: [square, square_again]
        """
    )
