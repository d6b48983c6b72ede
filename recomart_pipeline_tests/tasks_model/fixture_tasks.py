"""A stand-in ``features`` task for end-to-end runs of the model tasks (``callable:``)."""

from __future__ import annotations

from recomart_pipeline.contract.task import TaskContext, TaskResult, pipeline_task
from recomart_pipeline.tasks.specs.features import SPEC as FEATURES
from recomart_pipeline_tests.ml.synthetic import make_synthetic
from recomart_pipeline_tests.tasks_model.conftest import write_features

WRITTEN = {"user_index", "item_index", "train_ratings", "test_ratings", "test_interactions"}


@pipeline_task(outputs=[o for o in FEATURES.outputs if o.name in WRITTEN | {"train_implicit"}])
def synthetic_features(ctx: TaskContext) -> TaskResult:
    """Writes the features task's artifacts for a small latent-factor data set."""
    data = make_synthetic(n_users=200, n_items=150, per_user=30, seed=2)
    return TaskResult(outputs=write_features(data, ctx.output_dir))
