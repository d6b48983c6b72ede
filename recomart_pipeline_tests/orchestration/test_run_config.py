"""Per-run task values from the launchpad: typed schema, same validation, recorded overrides."""

from __future__ import annotations

import json

import pytest
from dagster import (
    DagsterInstance,
    DagsterInvalidConfigError,
    Enum,
    Field,
    Noneable,
    Shape,
)

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.orchestration.run_config import (
    config_for_run,
    run_config_overrides,
    task_config_schema,
)
from recomart_pipeline_tests.conftest import REPO_ROOT


def _job(path):
    return build_definitions(PipelineConfig(path)).resolve_job_def("automated_pipeline_job")


def _run(path, run_config):
    job = _job(path)
    instance = DagsterInstance.ephemeral()
    return instance, job.execute_in_process(
        run_config=run_config, instance=instance, raise_on_error=False
    )


def test_default_pipeline_schema_is_typed_optional_and_shows_the_yaml_values():
    config = PipelineConfig(REPO_ROOT / "pipeline_config.yaml")
    training = task_config_schema(config, "training")
    assert isinstance(training, Shape)
    svd = training.fields["svd"].config_type
    n_factors = svd.fields["n_factors"]
    assert n_factors.config_type.given_name == "Int"
    assert not n_factors.is_required and not n_factors.default_provided
    yaml_value = config.task_config("training").svd.n_factors
    assert f"In the YAML: {yaml_value}." in n_factors.description
    assert "Allowed: ≥ 1." in n_factors.description
    assert isinstance(training.fields["model_format"].config_type, Enum)
    evaluation = task_config_schema(config, "evaluation").fields
    assert isinstance(evaluation["max_eval_users"].config_type, Noneable)
    assert all(isinstance(f, Field) and not f.is_required for f in evaluation.values())


def test_secret_fields_are_not_offered_in_the_launchpad(write_config):
    path = write_config(
        """
        tasks:
          secret_task:
            callable: "recomart_pipeline_tests.sample_tasks:uses_secret"
        """
    )
    fields = task_config_schema(PipelineConfig(path), "secret_task").fields
    assert "api_token" not in fields and "endpoint" in fields


def test_nested_values_become_one_override_per_leaf():
    run_config = {
        "ops": {
            "training": {"config": {"svd": {"n_factors": 64, "lr": 0.01}, "seed": 3}},
            "unknown": {"config": {"x": 1}},
        }
    }
    assert run_config_overrides(run_config, ["training", "evaluation"]) == [
        "tasks.training.config.svd.n_factors=64",
        "tasks.training.config.svd.lr=0.01",
        "tasks.training.config.seed=3",
    ]


def test_launchpad_value_is_applied_recorded_and_tagged(sample_project):
    instance, result = _run(sample_project, {"ops": {"numbers": {"config": {"count": 6}}}})
    assert result.success
    project = sample_project.parent
    manifest = json.loads(
        (project / "storage" / "runs" / result.run_id / "manifest.json").read_text()
    )
    assert manifest["overrides"] == ["tasks.numbers.config.count=6"]
    assert manifest["config"]["tasks"]["numbers"]["config"]["count"] == 6
    assert manifest["tasks"]["total"]["metrics"] == {"total": 2 * sum(n * n for n in range(6))}
    tags = instance.get_run_by_id(result.run_id).tags
    assert json.loads(tags["recomart/overrides"]) == ["tasks.numbers.config.count=6"]
    # the YAML is untouched: the next run without run config uses count: 4 again
    _, plain = _run(sample_project, {})
    plain_manifest = json.loads(
        (project / "storage" / "runs" / plain.run_id / "manifest.json").read_text()
    )
    assert plain_manifest["overrides"] == []
    assert plain_manifest["tasks"]["total"]["metrics"] == {
        "total": 2 * sum(n * n for n in range(4))
    }


def test_launchpad_value_breaking_a_rule_is_refused_before_the_run_with_the_config_error(
    sample_project,
):
    instance = DagsterInstance.ephemeral()
    with pytest.raises(DagsterInvalidConfigError) as refused:
        _job(sample_project).execute_in_process(
            run_config={"ops": {"total": {"config": {}}, "numbers": {"config": {"count": -2}}}},
            instance=instance,
        )
    assert "run config:1 tasks.numbers.config.count: must be ≥ 0 (got -2)" in str(refused.value)
    assert instance.get_runs() == []
    assert not (sample_project.parent / "storage" / "latest" / "numbers.json").exists()


def test_wrong_type_is_refused_by_dagster_before_the_run(sample_project):
    with pytest.raises(DagsterInvalidConfigError, match="count"):
        _run(sample_project, {"ops": {"numbers": {"config": {"count": "many"}}}})


def test_launchpad_values_merge_into_the_loaded_config_not_a_fresh_read(sample_project):
    """A run uses the config the code location loaded plus its launchpad values, even when the
    file changed on disk since (the code location has not been reloaded)."""
    config = PipelineConfig(sample_project)
    sample_project.write_text(sample_project.read_text().replace("count: 4", "count: 9"))
    merged = config_for_run(config, {"ops": {"numbers": {"config": {"minimum_sum": 1}}}})
    assert merged.task_config("numbers").count == 4  # the loaded value, not the file's new 9
    assert merged.task_config("numbers").minimum_sum == 1
    assert merged.run_config_overrides == ["tasks.numbers.config.minimum_sum=1"]
    assert config.task_config("numbers").minimum_sum == 0  # the loaded config is unchanged
    assert config_for_run(config, {}) is config
