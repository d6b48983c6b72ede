"""A ``features`` task for end-to-end runs of the model tasks (``callable:``): the real
features task, fed with a small synthetic latent-factor world instead of upstream tasks."""

from __future__ import annotations

from recomart_pipeline.contract.task import TaskContext, TaskResult, pipeline_task
from recomart_pipeline.tasks.specs.features import SPEC as FEATURES
from recomart_pipeline_tests.ml.synthetic import make_synthetic
from recomart_pipeline_tests.tasks_model.real_features import run_features


@pipeline_task(outputs=FEATURES.outputs)
def synthetic_features(ctx: TaskContext) -> TaskResult:
    """The features task's artifacts for a small latent-factor data set."""
    data = make_synthetic(n_users=200, n_items=150, per_user=30, seed=2)
    return run_features(data, ctx.output_dir, ctx.output_dir.parent / f"{ctx.task_name}-input")
