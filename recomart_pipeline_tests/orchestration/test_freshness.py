"""The freshness policy follows the schedule: what a scheduled run delivers last must be
no older than the longest wait between two ticks plus a grace period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dagster import AssetKey
from dagster._core.definitions.freshness import TimeWindowFreshnessPolicy

from recomart_pipeline import ConfigError, PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline_tests.conftest import SAMPLE

DIAMOND = f"""
tasks:
  numbers: {{callable: "{SAMPLE}:make_numbers"}}
  square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
  square_again: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
  total: {{callable: "{SAMPLE}:total", depends_on: [square, square_again]}}
  lonely: {{callable: "{SAMPLE}:make_numbers"}}
"""


def _policies(write_config, extra: str) -> dict[str, TimeWindowFreshnessPolicy | None]:
    defs = build_definitions(PipelineConfig(write_config(extra + DIAMOND)))
    graph = defs.resolve_asset_graph()
    found = {}
    for key in graph.get_all_asset_keys():
        policy = graph.get(key).freshness_policy
        assert policy is None or isinstance(policy, TimeWindowFreshnessPolicy)
        found[key.to_user_string()] = policy
    return found


def _windows(policy: TimeWindowFreshnessPolicy | None) -> tuple[timedelta, timedelta | None]:
    assert policy is not None
    warn = policy.warn_window.to_timedelta() if policy.warn_window else None
    return policy.fail_window.to_timedelta(), warn


def test_a_daily_schedule_gives_the_last_assets_a_day_plus_grace(write_config):
    policies = _policies(
        write_config, 'scheduling: {enabled: true, cron: "0 2 * * *", timezone: UTC}\n'
    )
    assert {task for task, policy in policies.items() if policy} == {"total", "lonely"}
    assert _windows(policies["total"]) == (timedelta(hours=25), timedelta(hours=24))


def test_the_longest_gap_between_ticks_counts(write_config):
    weekdays = _policies(
        write_config,
        'scheduling: {enabled: true, cron: "0 9 * * 1-5", timezone: Europe/Berlin}\n'
        "monitoring: {freshness: {grace_hours: 2}}\n",
    )
    # Friday 09:00 to Monday 09:00, an hour longer over the weekend the clocks go back
    assert _windows(weekdays["total"]) == (timedelta(hours=75), timedelta(hours=73))
    daily = _policies(
        write_config,
        'scheduling: {enabled: true, cron: "0 2 * * *", timezone: Europe/Berlin}\n',
    )
    assert _windows(daily["total"]) == (timedelta(hours=26), timedelta(hours=25))


def test_no_schedule_no_promise_unless_a_max_age_is_set(write_config):
    assert not any(_policies(write_config, "").values())
    fixed = _policies(write_config, "monitoring: {freshness: {max_age_hours: 6}}\n")
    assert _windows(fixed["total"]) == (timedelta(hours=6), None)


def test_null_disables_the_policy(write_config):
    policies = _policies(
        write_config,
        "scheduling: {enabled: true}\nmonitoring: {freshness: {max_age_hours: null}}\n",
    )
    assert not any(policies.values())


def test_a_max_age_under_a_minute_is_refused_at_its_key(write_config):
    with pytest.raises(ConfigError, match=r"monitoring\.freshness\.max_age_hours.*one minute"):
        PipelineConfig(write_config("monitoring: {freshness: {max_age_hours: 0.001}}\n" + DIAMOND))


def test_the_shipped_pipelines_report_is_what_the_schedule_keeps_fresh(tmp_path):
    from recomart_pipeline_tests.helpers import REPO_ROOT

    config = PipelineConfig(
        REPO_ROOT / "pipeline_config.yaml", overrides=["scheduling.enabled=true"]
    )
    graph = build_definitions(config).resolve_asset_graph()
    fresh = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).freshness_policy is not None
    }
    assert fresh == {"monitoring"}
    assert graph.get(AssetKey("training")).freshness_policy is None
