"""The task models' rules are part of Dagster's run config validation, not only of the first
task: a launch that breaks one is refused before a run exists, by any way of launching."""

from __future__ import annotations

import pytest
from dagster import DagsterInvalidConfigError, validate_run_config

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline_tests.helpers import copy_default_project

# k: 5 from the launchpad while the shipped YAML's gates and selection metric use ndcg_at_10.
SMALLER_K = {"ops": {"evaluation": {"config": {"k": 5}}}}


def _default_job(project, overrides=()):
    config = PipelineConfig(project / "pipeline_config.yaml", overrides=overrides)
    return build_definitions(config).resolve_job_def("automated_pipeline_job")


def test_range_and_cross_field_rules_are_checked_when_dagster_validates_the_run_config(tmp_path):
    job = _default_job(copy_default_project(tmp_path, data_from=tmp_path))
    with pytest.raises(DagsterInvalidConfigError) as refused:
        validate_run_config(job, {"ops": {"training": {"config": {"svd": {"n_factors": -5}}}}})
    assert "run config:1 tasks.training.config.svd.n_factors: must be ≥ 1 (got -5)" in str(
        refused.value
    )
    with pytest.raises(DagsterInvalidConfigError, match=r"unknown metric\(s\) \['ndcg_at_10'\]"):
        validate_run_config(job, SMALLER_K)
    # values that pass the rules pass Dagster's validation too
    validate_run_config(job, {"ops": {"training": {"config": {"svd": {"n_factors": 8}}}}})
    validate_run_config(job, {})


def test_each_code_location_checks_against_its_own_yaml(tmp_path):
    """A value is judged with the YAML it merges into: two configs in one process (as after a
    reload) give two verdicts on the same launchpad value."""
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        copy_default_project(folder, data_from=folder)
    without_gates = [
        "tasks.evaluation.config.selection_metric=rmse",
        'tasks.evaluation.config.gates={"min": {}, "beat_baseline": {}}',
    ]
    validate_run_config(_default_job(second, without_gates), SMALLER_K)
    with pytest.raises(DagsterInvalidConfigError, match="with k=5"):
        validate_run_config(_default_job(first), SMALLER_K)
