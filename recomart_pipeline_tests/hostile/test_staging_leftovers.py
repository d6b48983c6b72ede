"""Half-written folders of killed tasks are removed by the next run and by housekeeping,
but never while their run is still alive (issue 14, point 8)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from recomart_pipeline import PipelineConfig
from recomart_pipeline.runtime.retention import apply_retention, plan_retention
from recomart_pipeline.runtime.runner import run_task
from recomart_pipeline.runtime.staging import STALE_AFTER_SECONDS
from recomart_pipeline_tests.conftest import SAMPLE


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _leftover(storage: Path, run_id: str, pid: int, beat_age: float) -> Path:
    """A staging folder of ``run_id`` whose process ``pid`` last beat ``beat_age`` s ago."""
    staging = storage / "runs" / run_id / ".staging" / "numbers-deadbeef"
    staging.mkdir(parents=True)
    (staging / "numbers.json").write_text("[0, 1")  # half written
    beats = storage / "runs" / run_id / "heartbeats"
    beats.mkdir(parents=True)
    beat = {"pid": pid, "host": socket.gethostname(), "ts": time.time() - beat_age, "children": []}
    (beats / f"{pid}.json").write_text(json.dumps(beat))
    return staging


def test_the_next_run_removes_a_dead_runs_staging_but_not_a_live_ones(write_config):
    path = write_config(f'tasks:\n  numbers: {{callable: "{SAMPLE}:make_numbers"}}\n')
    config = PipelineConfig(path)
    killed = _leftover(config.storage_root, "killed", _dead_pid(), 10 * STALE_AFTER_SECONDS)
    retired = killed.parents[1] / ".numbers-retired-0badc0de"
    retired.mkdir()
    alive = _leftover(config.storage_root, "alive", os.getpid(), 0)

    run_task(config, "numbers", "next")

    assert not killed.exists() and not retired.exists()
    assert alive.exists()
    assert (config.storage_root / "runs" / "killed" / "heartbeats").exists()  # only leftovers go


def test_housekeeping_lists_and_removes_leftovers(write_config):
    path = write_config(f'tasks:\n  numbers: {{callable: "{SAMPLE}:make_numbers"}}\n')
    config = PipelineConfig(path)
    killed = _leftover(config.storage_root, "killed", _dead_pid(), 10 * STALE_AFTER_SECONDS)
    actions = [a for a in plan_retention(config) if a.task == ".staging"]
    assert [(a.path, a.action) for a in actions] == [(killed, "delete")]
    assert killed in apply_retention(config, actions)
    assert not killed.exists()
