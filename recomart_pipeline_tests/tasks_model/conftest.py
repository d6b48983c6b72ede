"""Real upstream checkpoints (published through ArtifactStore) and a task runner for them.

``features`` writes the features task's documented artifacts from the synthetic latent-factor
data; ``run_model_task`` builds a TaskContext exactly as the runtime does, runs a task module
and publishes its outputs, so the next task reads genuine, hash-verified checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recomart_pipeline.contract.catalog import builtin_spec
from recomart_pipeline.contract.task import TaskResult
from recomart_pipeline.runtime.artifacts import ArtifactStore, Checkpoint
from recomart_pipeline.runtime.attempt import task_context
from recomart_pipeline_tests.ml.synthetic import SyntheticData, make_synthetic

RUN_ID = "run-model-tests"


def write_features(data: SyntheticData, out: Path) -> dict[str, Path]:
    """The features task's artifacts for ``data``, written into ``out``."""
    train = data.train
    paths = {
        name: out / f"{name}.parquet"
        for name in (
            "user_index",
            "item_index",
            "train_ratings",
            "test_ratings",
            "test_interactions",
        )
    }
    pd.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(train.n_users)],
            "user_idx": np.arange(train.n_users, dtype=np.int32),
        }
    ).sample(frac=1.0, random_state=0).to_parquet(paths["user_index"])
    pd.DataFrame(
        {
            "item_id": [f"i{i:04d}" for i in range(train.n_items)],
            "item_idx": np.arange(train.n_items, dtype=np.int32),
            "category": "books",
            "price": 9.5,
        }
    ).to_parquet(paths["item_index"])
    for name, ratings in (("train_ratings", train.ratings), ("test_ratings", data.test_ratings)):
        pd.DataFrame(
            {"user_idx": ratings.users, "item_idx": ratings.items, "rating": ratings.values}
        ).to_parquet(paths[name])
    held_out = data.test_interactions.tocoo()
    pd.DataFrame(
        {"user_idx": held_out.row.astype(np.int32), "item_idx": held_out.col.astype(np.int32)}
    ).to_parquet(paths["test_interactions"])
    paths["train_implicit"] = out / "train_implicit.npz"
    sp.save_npz(paths["train_implicit"], sp.csr_matrix(train.implicit, dtype=np.float32))
    return paths


@pytest.fixture(scope="session")
def synthetic() -> SyntheticData:
    return make_synthetic(n_users=300, n_items=200, per_user=40, seed=1)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "storage")


@pytest.fixture
def features(store: ArtifactStore, synthetic: SyntheticData) -> Checkpoint:
    staging = store.new_staging_dir(RUN_ID, "features")
    outputs = write_features(synthetic, staging)
    return store.publish(RUN_ID, "features", staging, outputs, {}, {})


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
