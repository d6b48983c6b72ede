"""Helpers for the data-task tests: real TaskContexts over a throwaway artifact store.

``TaskHarness.run`` builds the context the runtime would build (config validated by the
task's own model, upstream checkpoints, private staging dir) and publishes the result, so
the next task reads real, hash-verified checkpoints.
"""

from __future__ import annotations

import importlib
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recomart_pipeline.contract.catalog import builtin_spec
from recomart_pipeline.contract.task import TaskContext, TaskResult
from recomart_pipeline.runtime.artifacts import ArtifactStore, Checkpoint
from recomart_pipeline.runtime.attempt import previous_run, task_context
from recomart_pipeline.tasks._tables import TYPED_SCHEMAS, raw_schema, write_frame
from recomart_pipeline.tasks.specs.tables import TABLES

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TaskHarness:
    """Runs built-in data tasks the way the runtime does, against ``store``."""

    store: ArtifactStore
    project_root: Path
    run_id: str = "test-run"

    def publish(
        self, task: str, files: Mapping[str, Path], metrics: dict[str, Any] | None = None
    ) -> Checkpoint:
        """A fake upstream checkpoint holding copies of ``files``."""
        staging = self.store.new_staging_dir(self.run_id, task)
        outputs = {}
        for name, path in files.items():
            outputs[name] = staging / path.name
            shutil.copyfile(path, outputs[name])
        return self.store.publish(self.run_id, task, staging, outputs, metrics or {}, {})

    def context(
        self,
        task: str,
        config: dict[str, Any] | None = None,
        upstream: Mapping[str, Checkpoint] | None = None,
        previous: Checkpoint | None = None,
        task_name: str | None = None,
    ) -> TaskContext:
        spec = builtin_spec(task)
        name = task_name or task
        return task_context(
            spec,
            name,
            self.run_id,
            spec.config.model_validate(config or {}),
            dict(upstream or {}),
            self.store.new_staging_dir(self.run_id, name),
            self.project_root,
            self.store.root,
            logging.getLogger(f"test.{name}"),
            previous=previous_run(previous),
        )

    def run(
        self,
        task: str,
        config: dict[str, Any] | None = None,
        upstream: Mapping[str, Checkpoint] | None = None,
        previous: Checkpoint | None = None,
        run_id: str | None = None,
    ) -> tuple[TaskResult, Checkpoint]:
        """Run ``task`` once and publish its outputs under ``run_id``."""
        if run_id is not None:
            self.run_id = run_id
        ctx = self.context(task, config, upstream, previous)
        result = importlib.import_module(f"recomart_pipeline.tasks.{task}").run(ctx)
        checkpoint = self.store.publish(
            self.run_id, task, ctx.output_dir, result.outputs, result.metrics, result.metadata
        )
        return result, checkpoint


def sources(paths: Mapping[str, Path]) -> dict[str, Any]:
    """An ingestion config reading the given tables."""
    return {"source": {table: str(path) for table, path in paths.items()}}


def raw_table(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows in ingestion's raw layout (all text); missing keys become null."""
    columns = TABLES[table].columns
    return pa.table(
        {
            c: pa.array([None if r.get(c) is None else str(r[c]) for r in rows], pa.string())
            for c in columns
        },
        schema=raw_schema(TABLES[table]),
    )


def publish_raw(
    harness: TaskHarness,
    tmp_path: Path,
    interactions: list[dict[str, Any]],
    items: list[dict[str, Any]],
    users: list[dict[str, Any]],
    metrics: dict[str, Any] | None = None,
) -> Checkpoint:
    """A fake ingestion checkpoint from python rows."""
    folder = tmp_path / "raw"
    folder.mkdir(exist_ok=True)
    files = {}
    for name, rows in (("interactions", interactions), ("items", items), ("users", users)):
        files[name] = folder / f"{name}.parquet"
        pq.write_table(raw_table(name, rows), files[name])
    return harness.publish("ingestion", files, metrics)


def artifact_hashes(checkpoint: Checkpoint) -> dict[str, str]:
    return {name: record.sha256 for name, record in checkpoint.artifacts.items()}


def publish_typed(
    harness: TaskHarness,
    tmp_path: Path,
    task: str,
    tables: Mapping[str, pd.DataFrame],
) -> Checkpoint:
    """A fake upstream checkpoint of typed tables (e.g. validation's or preparation's)."""
    folder = tmp_path / f"typed-{task}"
    folder.mkdir(exist_ok=True)
    files = {}
    for name, frame in tables.items():
        layout = "interactions" if name in ("interactions", "train", "test", "fold_in") else name
        files[name] = write_frame(folder / f"{name}.parquet", frame, TYPED_SCHEMAS[layout])
    return harness.publish(task, files)


def events(rows: list[tuple[str, str, str, float | None, str]]) -> pd.DataFrame:
    """Typed interactions from (user, item, event, rating, ISO time) tuples."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "rating", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame.astype({"rating": "float32"})
