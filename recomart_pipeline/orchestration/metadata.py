"""What the UI shows about a materialization, in Dagster's standard metadata types.

Tables get ``dagster/row_count`` and ``dagster/column_schema`` read from their Parquet
footers (no data is loaded), so the catalog shows rows and columns like any Dagster asset;
booleans, nulls, paths and URLs get their own types instead of text; the data version is
the hash of the task's output hashes, so Dagster can tell an unchanged output from a
changed one.
"""

import hashlib
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from dagster import DataVersion, MetadataValue, TableColumn, TableSchema

from recomart_pipeline.contract.task import TaskSpec
from recomart_pipeline.runtime.artifacts import Checkpoint
from recomart_pipeline.runtime.runner import TaskOutcome

MARKDOWN_METADATA_KEYS = frozenset({"report_markdown"})


def metadata_value(key: str, value: Any) -> Any:
    """One task-reported value in the Dagster metadata type that fits it."""
    if key in MARKDOWN_METADATA_KEYS and isinstance(value, str):
        return MetadataValue.md(value)
    if value is None:
        return MetadataValue.null()
    if isinstance(value, bool):
        return MetadataValue.bool(value)
    if isinstance(value, int):
        return MetadataValue.int(value)
    if isinstance(value, float):
        return MetadataValue.float(value)
    if isinstance(value, (dict, list)):
        return MetadataValue.json(value)
    text = str(value)
    if key.endswith("_url") and text.startswith(("http://", "https://")):
        return MetadataValue.url(text)
    if key.endswith("_path"):
        return MetadataValue.path(text)
    return MetadataValue.text(text)


def _table_schema(path: Path) -> tuple[int, TableSchema]:
    footer = pq.read_metadata(path)
    schema = footer.schema.to_arrow_schema()
    columns = [TableColumn(name=f.name, type=str(f.type)) for f in schema]
    return footer.num_rows, TableSchema(columns=columns)


def table_metadata(spec: TaskSpec, checkpoint: Checkpoint) -> dict[str, Any]:
    """Row count and column schema of each Parquet output; the first declared one is the
    asset's own (``dagster/row_count``, ``dagster/column_schema``)."""
    metadata: dict[str, Any] = {}
    tables = [
        record
        for output in spec.outputs
        if output.kind == "parquet"
        for name, record in sorted(checkpoint.artifacts.items())
        if output.matches(name)
    ]
    for index, record in enumerate(tables):
        try:
            rows, schema = _table_schema(record.path)
        except (OSError, ValueError):  # not a readable Parquet file: nothing to describe
            continue
        metadata[f"row_count/{record.name}"] = MetadataValue.int(rows)
        if index == 0:
            metadata["dagster/row_count"] = MetadataValue.int(rows)
            metadata["dagster/column_schema"] = MetadataValue.table_schema(schema)
        else:
            metadata[f"column_schema/{record.name}"] = MetadataValue.table_schema(schema)
    return metadata


def materialization_metadata(spec: TaskSpec, outcome: TaskOutcome) -> dict[str, Any]:
    """Paths, hashes, tables, metrics and duration, so the UI can plot them over runs."""
    checkpoint = outcome.checkpoint
    first = next(iter(checkpoint.artifacts.values()), None)
    metadata: dict[str, Any] = {
        "status": MetadataValue.text("SUCCESS"),
        "duration_s": MetadataValue.float(round(outcome.duration_s, 4)),
    }
    if first is not None:
        metadata["run_dir"] = MetadataValue.path(str(first.path.parent))
    for name, record in checkpoint.artifacts.items():
        metadata[f"output/{name}"] = MetadataValue.path(str(record.path))
        metadata[f"sha256/{name}"] = MetadataValue.text(record.sha256)
    metadata.update(table_metadata(spec, checkpoint))
    for key, value in outcome.result.metrics.items():
        metadata[key] = metadata_value(key, value)
    for key, value in outcome.result.metadata.items():
        metadata[key] = metadata_value(key, value)
    return metadata


def data_version(checkpoint: Checkpoint) -> DataVersion:
    """Changes exactly when an output's content changes (paths and run ids do not count)."""
    digest = hashlib.sha256()
    for name, record in sorted(checkpoint.artifacts.items()):
        digest.update(f"{name}={record.sha256}\n".encode())
    return DataVersion(digest.hexdigest()[:24])


def asset_kinds(spec: TaskSpec) -> set[str]:
    """The kinds shown on the asset: the formats it writes (at most three, Dagster's limit)."""
    kinds = sorted({o.kind for o in spec.outputs if o.kind not in ("file", "model")})
    return {"python", *kinds[:2]}
