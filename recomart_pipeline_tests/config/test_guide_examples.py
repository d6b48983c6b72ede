"""Every YAML example of the user guide loads and behaves as the guide says.

The examples are kept verbatim under fixtures/guide/. Examples that show one section are
loaded the way a user would use them: as an overlay over the project's default config.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DefaultScheduleStatus

from recomart_pipeline import PipelineConfig, TaskDependencyGraph
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline_tests.conftest import FIXTURES, REPO_ROOT

GUIDE = FIXTURES / "guide"
STANDALONE = [
    "01_dependencies",
    "02_enable_disable",
    "03_timeouts",
    "04_retries",
    "05_training_config",
    "17_custom_pipeline",
    "18_production",
]
OVERLAYS = sorted(p.stem for p in GUIDE.glob("*.yaml") if p.stem not in STANDALONE)


def _overlay(tmp_path: Path, name: str) -> PipelineConfig:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"extends: {REPO_ROOT / 'pipeline_config.yaml'}\n" + (GUIDE / f"{name}.yaml").read_text()
    )
    return PipelineConfig(path)


@pytest.mark.parametrize("name", STANDALONE)
def test_standalone_examples_load_and_build_definitions(name):
    config = PipelineConfig(GUIDE / f"{name}.yaml")
    build_definitions(config)


@pytest.mark.parametrize("name", OVERLAYS)
def test_section_examples_load_as_overlays(tmp_path, name):
    build_definitions(_overlay(tmp_path, name))


def test_dependencies_run_in_the_documented_order():
    graph = TaskDependencyGraph(PipelineConfig(GUIDE / "01_dependencies.yaml"))
    assert graph.get_execution_order() == [
        "ingestion",
        "validation",
        "preparation",
        "features",
        "training",
    ]
    assert graph.get_parallel_groups() == [[t] for t in graph.get_execution_order()]


def test_disabled_tasks_and_their_dependents_are_skipped():
    graph = TaskDependencyGraph(PipelineConfig(GUIDE / "02_enable_disable.yaml"))
    assert graph.get_skipped_tasks() == {"validation": "disabled in config"}
    custom = TaskDependencyGraph(PipelineConfig(GUIDE / "17_custom_pipeline.yaml"))
    assert custom.get_execution_order() == ["ingestion", "validation"]
    assert set(custom.get_skipped_tasks()) == {"preparation", "features", "training"}


def test_timeouts_and_retries_are_taken_as_written():
    timeouts = TaskDependencyGraph(PipelineConfig(GUIDE / "03_timeouts.yaml"))
    assert timeouts.get_task_info("training")["timeout"] == 900
    retries = TaskDependencyGraph(PipelineConfig(GUIDE / "04_retries.yaml"))
    info = retries.get_task_info("ingestion")
    assert (info["retry_count"], info["retry_delay"]) == (2, 30)


def test_training_example_config_is_validated_by_the_training_schema():
    config = PipelineConfig(GUIDE / "05_training_config.yaml")
    training = config.task_configs["training"]
    assert training.model_type == "collaborative_filtering_svd"
    assert training.svd.n_factors == 50


def test_retry_policy_example_waits_two_four_eight_sixteen(tmp_path):
    policy = _overlay(tmp_path, "08_retry_policy").settings.retry_policy
    assert [policy.wait_seconds(2, n) for n in range(1, 5)] == [2, 4, 8, 16]
    assert policy.is_retryable("timeout") and not policy.is_retryable("schema_error")


def test_scheduling_example_makes_a_running_schedule(tmp_path):
    defs = build_definitions(_overlay(tmp_path, "06_scheduling"))
    schedule = defs.resolve_schedule_def("automated_pipeline_job_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING


def test_production_example_masks_its_webhook():
    config = PipelineConfig(GUIDE / "18_production.yaml")
    assert config.settings.execution.max_retries == 3
    assert config.to_dict()["notifications"]["slack"]["webhook_url"] == "**********"


def test_dev_and_prod_overlays_change_only_what_they_set(tmp_path):
    dev = _overlay(tmp_path, "10_dev_overlay")
    prod = _overlay(tmp_path, "11_prod_overlay")
    assert dev.settings.logging.level == "DEBUG" and prod.settings.logging.level == "WARNING"
    assert dev.settings.tasks["training"].timeout_seconds == 300
    assert prod.settings.tasks["training"].timeout_seconds == 3600
    assert dev.settings.tasks["training"].depends_on == ["features"]


@pytest.mark.parametrize("environment", ["dev", "test", "prod"])
def test_shipped_environment_overlays_load(environment, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example/T/B/secret")
    config = PipelineConfig(REPO_ROOT / f"pipeline_config.{environment}.yaml")
    assert config.settings.pipeline.environment == environment
    assert list(config.settings.tasks) == list(
        PipelineConfig(REPO_ROOT / "pipeline_config.yaml").settings.tasks
    )
    build_definitions(config)
