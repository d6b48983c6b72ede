"""The external data a task reads is an observable source asset upstream of it, so Dagster's
own stale status (the UI's badge) sees a changed data file, not only ``run --only-stale``."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    Definitions,
    build_sensor_context,
)
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
from dagster._core.definitions.data_version import (
    CachingStaleStatusResolver,
    StaleStatus,
    extract_data_version_from_entry,
)
from dagster._core.definitions.temporal_context import TemporalContext
from dagster._time import get_current_datetime

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.orchestration.factory import JOB_NAME
from recomart_pipeline.orchestration.source_assets import observe_changed_sources, source_key
from recomart_pipeline.orchestration.sources import task_source_fingerprint
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import REPO_ROOT

SOURCE = source_key("copy")


def _config(write_config) -> PipelineConfig:
    path = write_config(
        f"""
        scheduling: {{data_arrival: {{enabled: true, interval_seconds: 5}}}}
        tasks:
          copy: {{callable: "{SAMPLE}:copy_file", config: {{path: input.txt}}}}
          numbers: {{callable: "{SAMPLE}:make_numbers", config: {{count: 4}}}}
          square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
        """
    )
    (path.parent / "input.txt").write_text("first\n")
    return PipelineConfig(path)


def _statuses(defs: Definitions, instance: DagsterInstance) -> dict[str, StaleStatus]:
    """What the UI's stale badge says of every task asset now."""
    asset_graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    resolver = CachingStaleStatusResolver(instance, asset_graph, loading_context=view)
    return {
        key.to_user_string(): resolver.get_status(key)
        for key in asset_graph.materializable_asset_keys
    }


def _observed_versions(instance: DagsterInstance) -> list[str]:
    records = instance.fetch_observations(AssetRecordsFilter(asset_key=SOURCE), limit=100).records
    versions = [extract_data_version_from_entry(r.event_log_entry) for r in records]
    return [v.value for v in versions if v is not None]


def test_only_a_task_reading_external_data_gets_a_source_asset_and_depends_on_it(write_config):
    defs = build_definitions(_config(write_config))
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "sources/copy",
        "copy",
        "numbers",
        "square",
    }
    assert graph.get(AssetKey("copy")).parent_keys == {SOURCE}
    assert graph.get(AssetKey("numbers")).parent_keys == set()
    assert graph.get(SOURCE).is_observable and not graph.get(SOURCE).is_materializable
    assert graph.get(SOURCE).group_name == graph.get(AssetKey("copy")).group_name
    # the run job observes the source before the task reads it
    assert SOURCE in defs.resolve_job_def(JOB_NAME).asset_layer.selected_asset_keys


def test_the_default_pipeline_ingestion_depends_on_its_data_files():
    defs = build_definitions(PipelineConfig(REPO_ROOT / "pipeline_config.yaml"))
    graph = defs.resolve_asset_graph()
    sources = {k for k in graph.get_all_asset_keys() if graph.get(k).is_observable}
    assert sources == {source_key("ingestion")}
    assert source_key("ingestion") in graph.get(AssetKey("ingestion")).parent_keys
    # every task's data derives from those files: each depends on them, so a change shows
    # the whole lineage stale at once (Dagster's stale status is not transitive)
    tasks = graph.get_all_asset_keys() - sources
    assert all(source_key("ingestion") in graph.get(key).parent_keys for key in tasks)
    assert "interactions.csv" in (graph.get(source_key("ingestion")).description or "")


def test_a_changed_file_makes_its_task_stale_once_observed_and_nothing_else(write_config):
    config = _config(write_config)
    defs = build_definitions(config)
    instance = DagsterInstance.ephemeral()
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(instance=instance)
    assert result.success
    assert _observed_versions(instance) == [task_source_fingerprint(config, "copy")]
    assert set(_statuses(defs, instance).values()) == {StaleStatus.FRESH}

    source = config.project_root / "input.txt"
    os.utime(source, (1, 1))  # touched, same content: no new data version
    observe_changed_sources(config, instance, ["copy", "numbers", "square"])
    assert len(_observed_versions(instance)) == 1
    assert set(_statuses(defs, instance).values()) == {StaleStatus.FRESH}

    source.write_text("second\n")
    # Dagster cannot know before the source is observed
    assert _statuses(defs, instance)["copy"] == StaleStatus.FRESH
    versions = observe_changed_sources(config, instance, ["copy", "numbers", "square"])
    assert versions == {"copy": task_source_fingerprint(config, "copy")}
    assert _statuses(defs, instance) == {
        "copy": StaleStatus.STALE,
        "numbers": StaleStatus.FRESH,
        "square": StaleStatus.FRESH,
    }


def test_the_data_arrival_sensor_observes_the_new_data(write_config):
    config = _config(write_config)
    defs = build_definitions(config)
    instance = DagsterInstance.ephemeral()
    sensor = defs.resolve_sensor_def("data_arrival_sensor")
    context = build_sensor_context(cursor=None, instance=instance)
    sensor(context)  # the baseline
    assert _observed_versions(instance) == [task_source_fingerprint(config, "copy")]
    sensor(build_sensor_context(cursor=context.cursor, instance=instance))
    assert len(_observed_versions(instance)) == 1  # same data, nothing new recorded
    Path(config.project_root / "input.txt").write_text("second\n")
    sensor(build_sensor_context(cursor=context.cursor, instance=instance))
    assert _observed_versions(instance)[0] == task_source_fingerprint(config, "copy")
    assert len(_observed_versions(instance)) == 2
