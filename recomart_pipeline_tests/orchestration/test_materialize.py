"""Materializing generated jobs through Dagster (in process): data flow, retries, checks."""

from __future__ import annotations

import json

from dagster import DagsterEventType, DagsterInstance

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline_tests.conftest import SAMPLE


def _execute(path):
    config = PipelineConfig(path)
    job = build_definitions(config).resolve_job_def("automated_pipeline_job")
    return config, job.execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False
    )


def _events(result, kind):
    return [e for e in result.all_events if e.event_type == kind]


def test_diamond_materializes_with_metadata(sample_project):
    config, result = _execute(sample_project)
    assert result.success
    materialized = {e.step_key for e in _events(result, DagsterEventType.ASSET_MATERIALIZATION)}
    assert materialized == {"numbers", "square", "square_again", "total"}
    total = next(
        e for e in _events(result, DagsterEventType.ASSET_MATERIALIZATION) if e.step_key == "total"
    )
    metadata = total.event_specific_data.materialization.metadata
    assert metadata["total"].value == 28
    assert metadata["output/total"].value.endswith("total.json")
    latest = json.loads((config.storage_root / "latest" / "total.json").read_text())
    assert latest["run_id"] == result.run_id


def test_transient_error_is_retried_with_capped_backoff(write_config):
    path = write_config(
        f"""
        retry_policy: {{backoff_base: 10, max_backoff: 0.3, jitter: 0}}
        tasks:
          flaky: {{callable: "{SAMPLE}:flaky", retry_count: 3, retry_delay: 0.1}}
        """
    )
    _, result = _execute(path)
    assert result.success
    retries = _events(result, DagsterEventType.STEP_UP_FOR_RETRY)
    waits = [e.event_specific_data.seconds_to_wait for e in retries]
    assert waits == [0.1, 0.3]  # 0.1 × 10^0, then min(0.3, 0.1 × 10^1)


def test_retries_run_out_and_the_final_failure_says_so(write_config):
    path = write_config(
        f"""
        retry_policy: {{max_backoff: 0.01, jitter: 0}}
        tasks:
          flaky: {{callable: "{SAMPLE}:flaky", retry_count: 1, retry_delay: 0.01}}
        """
    )
    _, result = _execute(path)
    assert not result.success
    failure = _events(result, DagsterEventType.STEP_FAILURE)[0]
    assert "failed after 2 attempts" in failure.event_specific_data.error.message
    assert len(_events(result, DagsterEventType.STEP_UP_FOR_RETRY)) == 1


def test_non_retryable_error_fails_at_once(write_config):
    path = write_config(
        f"""
        tasks:
          bad: {{callable: "{SAMPLE}:bad_schema", retry_count: 5, retry_delay: 0.01}}
        """
    )
    _, result = _execute(path)
    assert not result.success
    assert _events(result, DagsterEventType.STEP_UP_FOR_RETRY) == []
    failure = _events(result, DagsterEventType.STEP_FAILURE)[0]
    assert "error class 'schema_error' is not retried" in failure.event_specific_data.error.message


def test_failed_blocking_check_stops_downstream(write_config):
    path = write_config(
        f"""
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers", config: {{count: 2, minimum_sum: 99}}}}
          square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
        """
    )
    _, result = _execute(path)
    assert not result.success
    checks = _events(result, DagsterEventType.ASSET_CHECK_EVALUATION)
    assert [(c.event_specific_data.check_name, c.event_specific_data.passed) for c in checks] == [
        ("sum_large_enough", False)
    ]
    materialized = {e.step_key for e in _events(result, DagsterEventType.ASSET_MATERIALIZATION)}
    assert "square" not in materialized


def test_run_timeout_stops_the_running_task_and_starts_no_new_one(write_config):
    path = write_config(
        f"""
        execution: {{timeout_seconds: 2, continue_on_error: true}}
        tasks:
          hang: {{callable: "{SAMPLE}:hang", retry_count: 3, retry_delay: 0.1, config: {{seconds: 120}}}}
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
        """
    )
    _, result = _execute(path)
    assert not result.success
    failures = {
        e.step_key: e.event_specific_data.error.message
        for e in _events(result, DagsterEventType.STEP_FAILURE)
    }
    # the run's limit fired, and the message says so (not a task timeout of what was left)
    assert (
        "the run exceeded execution.timeout_seconds (2s); task 'hang' was stopped"
        in (failures["hang"])
    )
    assert "run's execution.timeout_seconds (2s) is used up" in failures["hang"]
    assert "task 'numbers' was not started" in failures["numbers"]
    assert _events(result, DagsterEventType.ASSET_MATERIALIZATION) == []


def _fail_fast_project(write_config, continue_on_error: bool):
    return write_config(
        f"""
        execution: {{continue_on_error: {str(continue_on_error).lower()}}}
        tasks:
          bad: {{callable: "{SAMPLE}:bad_schema"}}
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
          square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
        """
    )


def test_fail_fast_starts_no_new_task_after_a_failure(write_config):
    _, result = _execute(_fail_fast_project(write_config, continue_on_error=False))
    assert not result.success
    assert _events(result, DagsterEventType.ASSET_MATERIALIZATION) == []
    failures = {
        e.step_key: e.event_specific_data.error.message
        for e in _events(result, DagsterEventType.STEP_FAILURE)
    }
    assert "not started (fail-fast): 'bad' failed" in failures["numbers"]
    assert "square" not in failures


def test_continue_on_error_lets_independent_branches_finish(write_config):
    _, result = _execute(_fail_fast_project(write_config, continue_on_error=True))
    assert not result.success
    materialized = {e.step_key for e in _events(result, DagsterEventType.ASSET_MATERIALIZATION)}
    assert materialized == {"numbers", "square"}
