"""The Definitions generated from a config: assets, deps, checks, retries, executor, schedule."""

from __future__ import annotations

from dagster import AssetKey, Backoff, DagsterInstance, DefaultScheduleStatus

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.orchestration.executors import parallel_executor_config
from recomart_pipeline_tests.conftest import SAMPLE


def _defs(path):
    return build_definitions(PipelineConfig(path))


def test_one_asset_per_enabled_task_with_deps_and_group(write_config):
    path = write_config(
        f"""
        pipeline: {{name: shop}}
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers", owner: data_eng, description: "The numbers"}}
          square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
          switched_off: {{callable: "{SAMPLE}:make_numbers", enabled: false}}
          after_switched_off: {{callable: "{SAMPLE}:square", depends_on: [switched_off]}}
        """
    )
    defs = _defs(path)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {"numbers", "square"}
    square = graph.get(AssetKey("square"))
    assert square.parent_keys == {AssetKey("numbers")}
    numbers = graph.get(AssetKey("numbers"))
    assert numbers.group_name == "shop"
    assert numbers.owners == ["team:data_eng"]
    assert numbers.description == "The numbers"
    specs = {spec.name: spec for spec in defs.resolve_assets_def(AssetKey("numbers")).check_specs}
    assert specs["sum_large_enough"].blocking is True


def test_retry_policy_and_code_version_follow_the_config(write_config):
    path = write_config(
        f"""
        retry_policy: {{use_exponential_backoff: true}}
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers", retry_count: 3, retry_delay: 5}}
          square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
        """
    )
    defs = _defs(path)
    numbers = defs.resolve_assets_def(AssetKey("numbers"))
    policy = numbers.op.retry_policy
    assert policy.max_retries == 3 and policy.delay == 5 and policy.backoff == Backoff.EXPONENTIAL
    assert defs.resolve_assets_def(AssetKey("square")).op.retry_policy is None
    before = numbers.code_versions_by_key[AssetKey("numbers")]
    path.write_text(path.read_text().replace("retry_count: 3", "retry_count: 4"))
    after = (
        _defs(path)
        .resolve_assets_def(AssetKey("numbers"))
        .code_versions_by_key[AssetKey("numbers")]
    )
    assert before != after


def test_executor_follows_execution_mode(write_config):
    sequential = write_config(f'tasks:\n  a: {{callable: "{SAMPLE}:make_numbers"}}\n')
    job = _defs(sequential).resolve_job_def("automated_pipeline_job")
    assert job.executor_def.name == "in_process"
    parallel = write_config(
        f'execution: {{mode: parallel}}\nresources: {{max_cpu_cores: 3}}\ntasks:\n  a: {{callable: "{SAMPLE}:make_numbers"}}\n',
        "parallel.yaml",
    )
    job = _defs(parallel).resolve_job_def("automated_pipeline_job")
    assert job.executor_def.name == "parallel_executor"
    assert parallel_executor_config(PipelineConfig(parallel))["max_concurrent"] == 3


def test_schedule_from_scheduling_section(write_config):
    path = write_config(
        f"""
        scheduling: {{enabled: true, cron: "0 9 * * MON", timezone: Europe/Berlin}}
        tasks:
          a: {{callable: "{SAMPLE}:make_numbers"}}
        """
    )
    schedule = _defs(path).resolve_schedule_def("automated_pipeline_job_schedule")
    assert schedule.cron_schedule == "0 9 * * MON"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    path.write_text(path.read_text().replace("enabled: true", "enabled: false"))
    stopped = _defs(path).resolve_schedule_def("automated_pipeline_job_schedule")
    assert stopped.default_status == DefaultScheduleStatus.STOPPED


def test_all_tasks_skipped_still_gives_a_job_that_says_why(write_config):
    path = write_config(
        f'pipeline: {{enabled: false}}\ntasks:\n  a: {{callable: "{SAMPLE}:make_numbers"}}\n'
    )
    job = _defs(path).resolve_job_def("automated_pipeline_job")
    instance = DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance)
    assert result.success
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("every task is skipped (a: pipeline.enabled is false)" in m for m in messages)
