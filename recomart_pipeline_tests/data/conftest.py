"""Fixtures for the data-task tests (helpers live in ``helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.runtime.artifacts import ArtifactStore
from recomart_pipeline_tests.data.helpers import TaskHarness


@pytest.fixture
def harness(tmp_path: Path) -> TaskHarness:
    return TaskHarness(ArtifactStore(tmp_path / "storage"), project_root=tmp_path)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small dirty CSV dataset (shared, read-only)."""
    return generate_dataset(
        tmp_path_factory.mktemp("small"),
        users=300,
        items=120,
        interactions=6000,
        seed=3,
        dirty_fraction=0.02,
        file_format="csv",
    )
