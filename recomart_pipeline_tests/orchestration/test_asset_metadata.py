"""Standard Dagster metadata on every materialization: row counts and column schemas of
Parquet outputs, typed booleans, nulls and URLs, kinds, and data versions that change only
when an output's content does (issue 18)."""

from __future__ import annotations

from dagster import (
    AssetKey,
    BoolMetadataValue,
    DagsterEventType,
    DagsterInstance,
    NullMetadataValue,
    UrlMetadataValue,
)

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline_tests.conftest import SAMPLE


def _materializations(path, overrides=()):
    config = PipelineConfig(path, overrides=list(overrides))
    definitions = build_definitions(config)
    result = definitions.resolve_job_def("automated_pipeline_job").execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert result.success
    events = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
    ]
    return definitions, {m.asset_key.path[-1]: m for m in events}


def test_tables_have_row_counts_schemas_and_typed_values(write_config):
    path = write_config(
        f"""
        tasks:
          table: {{callable: "{SAMPLE}:make_table", config: {{count: 7}}}}
        """
    )
    definitions, found = _materializations(path)
    metadata = found["table"].metadata
    assert metadata["dagster/row_count"].value == 7
    columns = metadata["dagster/column_schema"].value.columns
    assert [(c.name, c.type) for c in columns] == [("id", "int64"), ("score", "double")]
    assert isinstance(metadata["degraded"], BoolMetadataValue)
    assert isinstance(metadata["note"], NullMetadataValue)
    assert isinstance(metadata["service_url"], UrlMetadataValue)
    spec = next(iter(definitions.resolve_assets_def(AssetKey("table")).specs))
    assert {"python", "parquet"} <= set(spec.kinds)


def test_the_data_version_follows_the_content(write_config):
    path = write_config(
        f"""
        tasks:
          table: {{callable: "{SAMPLE}:make_table", config: {{count: 7}}}}
        """
    )
    _, first = _materializations(path)
    _, same = _materializations(path)
    _, changed = _materializations(path, ["tasks.table.config.count=8"])

    def version(m):
        return m.tags["dagster/data_version"]

    assert version(first["table"]) == version(same["table"])
    assert version(changed["table"]) != version(first["table"])
