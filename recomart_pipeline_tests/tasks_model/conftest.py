"""Real upstream checkpoints (published through ArtifactStore) and a task runner for them.

``features`` is the real features task's checkpoint for the synthetic latent-factor data
(tasks_model/real_features.py); ``run_model_task`` builds a TaskContext exactly as the runtime does, runs a task module
and publishes its outputs, so the next task reads genuine, hash-verified checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from recomart_pipeline.contract.catalog import builtin_spec
from recomart_pipeline.contract.task import TaskResult
from recomart_pipeline.runtime.artifacts import ArtifactStore, Checkpoint
from recomart_pipeline.runtime.attempt import task_context
from recomart_pipeline_tests.ml.synthetic import SyntheticData, make_synthetic
from recomart_pipeline_tests.tasks_model.real_features import run_features

RUN_ID = "run-model-tests"


@pytest.fixture(scope="session")
def synthetic() -> SyntheticData:
    return make_synthetic(n_users=300, n_items=200, per_user=40, seed=1)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "storage")


@pytest.fixture
def features(store: ArtifactStore, synthetic: SyntheticData, tmp_path: Path) -> Checkpoint:
    """The real features task's checkpoint for the synthetic world."""
    staging = store.new_staging_dir(RUN_ID, "features")
    result = run_features(synthetic, staging, tmp_path / "features-input")
    return store.publish(RUN_ID, "features", staging, result.outputs, result.metrics, {})


@pytest.fixture
def implicit_features(store: ArtifactStore, synthetic: SyntheticData, tmp_path: Path) -> Checkpoint:
    """The real features task's checkpoint for the same world without rating events (views
    and purchases only): what a shop that collects no ratings produces."""
    staging = store.new_staging_dir(RUN_ID, "features")
    result = run_features(synthetic, staging, tmp_path / "features-input", implicit_only=True)
    return store.publish(RUN_ID, "features", staging, result.outputs, result.metrics, {})


RunTask = Callable[[ModuleType, Any, dict[str, Checkpoint]], tuple[TaskResult, Checkpoint]]


@pytest.fixture
def run_model_task(store: ArtifactStore, tmp_path: Path) -> RunTask:
    """Run ``module.run`` with a real TaskContext and publish what it returns."""

    def run(
        module: ModuleType, config: Any, upstream: dict[str, Checkpoint]
    ) -> tuple[TaskResult, Checkpoint]:
        task = module.__name__.rsplit(".", 1)[-1]
        staging = store.new_staging_dir(RUN_ID, task)
        spec = builtin_spec(task)
        ctx = task_context(
            spec,
            task,
            RUN_ID,
            spec.config.model_validate(config),
            upstream,
            staging,
            tmp_path,
            store.root,
            logging.getLogger(f"recomart.test.{task}"),
        )
        result = module.run(ctx)
        checkpoint = store.publish(
            RUN_ID, task, staging, result.outputs, result.metrics, result.metadata
        )
        return result, checkpoint

    return run
