"""Daily partitions: a backfill processes one day per run; the schedule asks for yesterday."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, build_schedule_context

from recomart_pipeline import PipelineConfig
from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline_tests.helpers import run_in_project

CONFIG = """
scheduling:
  cron: "0 2 * * *"
  partitions: {enabled: true, start_date: "2026-01-01"}
tasks:
  ingestion: {}
  validation:
    depends_on: [ingestion]
    config: {freshness: {severity: WARN}}
  preparation:
    depends_on: [validation]
    config: {split: {min_eval_users: 10}}  # one day of 80 users
"""


@pytest.fixture
def partitioned_project(tmp_path):
    generate_dataset(
        tmp_path / "data", users=80, items=40, interactions=3000, seed=5, file_format="csv", days=5
    )
    (tmp_path / "pipeline_config.yaml").write_text(CONFIG)
    return tmp_path


def test_schedule_tick_requests_the_previous_day(partitioned_project):
    defs = build_definitions(PipelineConfig(partitioned_project / "pipeline_config.yaml"))
    schedule = defs.resolve_schedule_def("automated_pipeline_job_schedule")
    tick = datetime(2026, 1, 4, 2, 0, tzinfo=ZoneInfo("UTC"))
    (partitioned_project / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(tempdir=str(partitioned_project / "dagster_home"))
    context = build_schedule_context(
        instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    )
    request = schedule.evaluate_tick(context)
    assert [r.partition_key for r in request.run_requests] == ["2026-01-03"]
    assert defs.resolve_assets_def("ingestion").partitions_def is not None


@pytest.mark.slow
def test_backfill_processes_one_day_per_partition(partitioned_project):
    done = run_in_project(
        [
            sys.executable,
            "-m",
            "recomart_pipeline",
            "backfill",
            "--from",
            "2026-01-02",
            "--to",
            "2026-01-03",
        ],
        partitioned_project,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "backfill of 2 partition(s): 2 succeeded" in done.stdout
    latest = partitioned_project / "storage" / "latest" / "partitions"
    for day in ("2026-01-02", "2026-01-03"):
        pointer = json.loads((latest / day / "ingestion.json").read_text())
        table = pq.read_table(
            partitioned_project / "storage" / pointer["artifacts"]["interactions"]["path"]
        )
        stamps = table.column("timestamp").to_pylist()
        assert stamps and all(s.startswith(day) for s in stamps)
        assert (latest / day / "preparation.json").exists()
    bad = run_in_project(
        [
            sys.executable,
            "-m",
            "recomart_pipeline",
            "backfill",
            "--from",
            "2025-12-30",
            "--to",
            "2026-01-01",
        ],
        partitioned_project,
    )
    assert bad.returncode == 2 and "no partition 2025-12-30" in bad.stderr
