"""Timeouts on a cold worker: the limit is wall-clock from the attempt's start (the task's
``timeout_seconds``) or the run's start (``execution.timeout_seconds``), whatever the worker
is doing, and the attempt is stopped within 1 s of it.

Each test runs in a fresh interpreter, so the forkserver is not started yet; the task's
module takes seconds to import. Times are read from what the runtime and Dagster recorded
(the attempt's duration and end in the run manifest, the run's start), never from the
test's own clock, so a loaded machine cannot make them flaky.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance

from recomart_pipeline.runtime.records import MANIFEST
from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.helpers import project_env

pytestmark = pytest.mark.slow
SLOW = "recomart_pipeline_tests.slow_import_tasks"
IMPORT_SECONDS = "6"  # longer than the limits below: the limit fires while importing
STOPPED_WITHIN_S = 1.0
# One attempt in a fresh process whose forkserver must also preload the slow module, so the
# deadline comes while the worker process is still starting; then wait until that late
# start is over, to see whether the task's body ever ran.
ATTEMPT = """
import sys, threading
from recomart_pipeline import PipelineConfig
from recomart_pipeline.runtime import isolation
from recomart_pipeline.runtime.runner import TaskFailure, run_task

isolation.PRELOAD.append("recomart_pipeline_tests.slow_import_tasks")
try:
    run_task(PipelineConfig(sys.argv[1]), "slow", "cold-run")
except TaskFailure as failure:
    print(failure.message)
for thread in threading.enumerate():
    if thread.name.endswith("-start"):
        thread.join()
"""


def _env(project: Path) -> dict[str, str]:
    return {**project_env(project), "SLOW_IMPORT_SECONDS": IMPORT_SECONDS}


def _attempts(project: Path, run_id: str, task: str) -> list[dict]:
    manifest = json.loads((project / "storage" / "runs" / run_id / MANIFEST).read_text())
    return manifest["tasks"][task]["attempts"]


def test_a_cold_worker_is_stopped_within_1s_of_the_task_timeout(write_config, tmp_path):
    marker = tmp_path / "body-ran.marker"
    path = write_config(
        f"""
        tasks:
          slow:
            callable: "{SLOW}:wait_forever"
            timeout_seconds: 2
            config: {{marker: "{marker}"}}
        """
    )
    project = path.parent
    done = subprocess.run(
        [sys.executable, "-c", ATTEMPT, str(path)],
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "task 'slow' exceeded its timeout of 2s (tasks.slow.timeout_seconds) and was stopped "
        "while its worker process was still starting"
    ) in done.stdout
    [attempt] = _attempts(project, "cold-run", "slow")
    assert attempt["status"] == "TIMEOUT"
    assert 2 <= attempt["duration_s"] < 2 + STOPPED_WITHIN_S, attempt
    assert not marker.exists()  # the late child stopped itself before the task's body


def test_the_run_timeout_counts_from_the_run_start_and_names_itself(write_config):
    path = write_config(
        f"""
        execution: {{timeout_seconds: 3}}
        tasks:
          slow: {{callable: "{SLOW}:wait_forever", timeout_seconds: 60, retry_count: 2}}
        """
    )
    project = path.parent
    env = _env(project)
    done = subprocess.run(
        [sys.executable, "-m", "recomart_pipeline", "run"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        [record] = instance.get_run_records()
    [attempt] = _attempts(project, record.dagster_run.run_id, "slow")  # no retry: time is up
    assert attempt["status"] == "TIMEOUT"
    assert attempt["error"].startswith(
        "the run exceeded execution.timeout_seconds (3s); task 'slow' was stopped"
    )
    assert "60" not in attempt["error"]
    stopped = datetime.fromisoformat(attempt["finished_at"]).timestamp()
    assert record.start_time is not None
    assert 3 <= stopped - record.start_time < 3 + STOPPED_WITHIN_S, attempt
    assert "is used up" in done.stdout + done.stderr


def test_the_enforcement_benchmark_runs_and_meets_its_target(tmp_path):
    """``benchmarks/timeout_enforcement.py`` cannot rot; its recorded delays meet the target."""
    output = tmp_path / "timeouts.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "timeout_enforcement.py"),
            "--repeats",
            "1",
            "--no-load",
            "--output",
            str(output),
        ],
        cwd=REPO_ROOT,
        env=project_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())["as_found"]
    assert results["phases"]["cold_starting"] == ["starting"]
    for case in ("cold_starting", "cold_running", "warm"):
        assert 0 <= results[case]["min"] <= results[case]["max"] < STOPPED_WITHIN_S, case
    # SIGKILL after the grace period, still within the target
    assert 0.5 <= results["warm_deaf"]["min"] <= results["warm_deaf"]["max"] < STOPPED_WITHIN_S
    assert "## Timeout enforcement" in done.stdout
