"""Registries whose versions carry the serving arrays, built from real fitted models."""

from __future__ import annotations

from pathlib import Path

import pytest
import scipy.sparse as sp

from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline.deployment.serving_arrays import with_serving_arrays
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.persistence import save_model
from recomart_pipeline_tests.helpers import write_index_files
from recomart_pipeline_tests.ml.synthetic import make_synthetic

N_USERS, N_ITEMS = 120, 60
# Small, so requests for more items than the arrays hold are easy to make.
SMALL_K = 8


def served_registry(
    root: Path,
    model_types: list[str],
    k: int = SMALL_K,
    seed: int = 7,
    n_users: int = N_USERS,
    n_items: int = N_ITEMS,
) -> ModelRegistry:
    """One version per model type (v0001, v0002, ...), each fitted on the same data and
    registered with its serving arrays of ``k`` items per user; v0001 is the champion."""
    work = root / "build"
    work.mkdir(parents=True)
    data = make_synthetic(n_users=n_users, n_items=n_items, per_user=10, seed=seed)
    sources = write_index_files(work, n_users, n_items, "user-", "item-")
    sp.save_npz(sources["train_implicit.npz"], data.train.implicit)
    registry = ModelRegistry(root / "registry")
    for model_type in model_types:
        model = create_model(model_type)
        model.fit(data.train)
        path = work / f"{model_type}.npz"
        save_model(model, path, model_format="npz")
        registry.register(
            path,
            with_serving_arrays(path, sources, work / f"{model_type}-arrays", k),
            model_type=model_type,
            metrics={},
            data_hash=None,
            run_id=f"run-{model_type}",
        )
    registry.promote("v0001")
    return registry


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return served_registry(tmp_path, ["als", "popularity", "svd"])
