"""The task models' rules are part of Dagster's run config validation, not only of the first
task: a launch that breaks one is refused before a run exists, by any way of launching."""

from __future__ import annotations

import pytest
from dagster import DagsterInvalidConfigError, validate_run_config

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline_tests.conftest import SAMPLE
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


SMTP_SECRET = "smtp-pw-launch-5e1d"
OTHER_SECRET = "other-pw-launch-9a2c"


@pytest.fixture
def alerting_job(write_config, monkeypatch):
    """A pipeline whose SMTP password and Slack webhook come from the environment."""
    monkeypatch.setenv("LAUNCH_SMTP_PASSWORD", SMTP_SECRET)
    monkeypatch.setenv("LAUNCH_OTHER_PASSWORD", OTHER_SECRET)
    config = PipelineConfig(
        write_config(
            f"""
            notifications:
              email:
                password: ${{LAUNCH_SMTP_PASSWORD}}
                recipients: [ops@example.com]
            tasks:
              numbers: {{callable: "{SAMPLE}:make_numbers"}}
            """
        )
    )
    return build_definitions(config).resolve_job_def("automated_pipeline_job")


def _resources(key: str, values: dict) -> dict:
    return {"resources": {key: {"config": values}}}


@pytest.mark.parametrize(
    ("key", "values", "message"),
    [
        (
            "smtp",
            {"smtp_port": 70000},
            "notifications.email.smtp_port: must be ≤ 65535 (got 70000)",
        ),
        ("smtp", {"security": "tls"}, "notifications.email.security: must be one of"),
        ("smtp", {"enabled": True, "recipients": []}, "email is enabled but 'recipients' is empty"),
        ("slack", {"enabled": True}, "slack is enabled but 'webhook_url' is empty"),
    ],
)
def test_a_resource_value_breaking_the_yamls_rules_is_refused_by_dagsters_validation(
    alerting_job, key, values, message
):
    with pytest.raises(DagsterInvalidConfigError) as refused:
        validate_run_config(alerting_job, _resources(key, values))
    assert message in str(refused.value)
    assert f"root:resources:{key}:config" in str(refused.value)  # where the launchpad set it


def test_good_resource_values_pass_and_a_refusal_shows_no_secret(alerting_job):
    validate_run_config(alerting_job, _resources("smtp", {"smtp_port": 2525}))
    validate_run_config(alerting_job, {})  # the YAML's own values, secrets resolved
    refused_values = {"smtp_port": 0, "password": {"env": "LAUNCH_OTHER_PASSWORD"}}
    with pytest.raises(DagsterInvalidConfigError) as refused:
        validate_run_config(alerting_job, _resources("smtp", refused_values))
    shown = str(refused.value)
    assert "notifications.email.smtp_port: must be ≥ 1 (got 0)" in shown
    assert OTHER_SECRET not in shown and SMTP_SECRET not in shown
    assert "'password': '***'" in shown
