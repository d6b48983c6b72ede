"""Breaking things on purpose; each test states what "nothing lost" means and asserts it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance

from recomart_pipeline import PipelineConfig
from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import project_env, run_id_of


def _execute(path):
    config = PipelineConfig(path)
    job = build_definitions(config).resolve_job_def("automated_pipeline_job")
    instance = DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    result.entries = [e for e in instance.all_logs(result.run_id) if e.dagster_event]
    return config, result


def _events(result, kind):
    return [e for e in result.all_events if e.event_type == kind]


def _times(result, kind, step: str | None = None) -> list[float]:
    return [
        e.timestamp
        for e in result.entries
        if e.dagster_event.event_type == kind and (step is None or e.step_key == step)
    ]


def test_transient_error_succeeds_on_attempt_3_after_the_policy_waits(write_config):
    """Nothing lost: the task's output is the third attempt's, and the waits follow the policy.

    The waits are the ones Dagster recorded on its STEP_UP_FOR_RETRY events (what the
    executor then honours), not wall-clock gaps, so a busy machine cannot make this flaky.
    """
    path = write_config(
        f"""
        retry_policy: {{backoff_base: 3, max_backoff: 1.0, jitter: 0}}
        tasks:
          flaky: {{callable: "{SAMPLE}:flaky", retry_count: 3, retry_delay: 0.4}}
        """
    )
    config, result = _execute(path)
    assert result.success
    # min(max_backoff, retry_delay * backoff_base ** (n - 1)) for retries n = 1, 2:
    # 0.4 * 3**0 = 0.4, then 0.4 * 3**1 = 1.2 capped at max_backoff = 1.0.
    expected = [0.4, 1.0]
    retries = [
        e
        for e in result.entries
        if e.dagster_event.event_type == DagsterEventType.STEP_UP_FOR_RETRY
    ]
    assert [e.step_key for e in retries] == ["flaky", "flaky"]
    recorded = [e.dagster_event.event_specific_data.seconds_to_wait for e in retries]
    assert recorded == pytest.approx(expected, abs=1e-9), recorded
    assert len(_times(result, DagsterEventType.STEP_START)) == 1
    restarts = _times(result, DagsterEventType.STEP_RESTARTED)
    assert len(restarts) == 2
    # A lower bound only (load can make a restart later, never earlier): the executor did
    # wait at least the recorded time before each restart. 10 ms of timestamp rounding.
    for event, restart, wait in zip(retries, restarts, recorded, strict=True):
        assert restart - event.timestamp >= wait - 0.01, (restart - event.timestamp, wait)
    latest = json.loads((config.storage_root / "latest" / "flaky.json").read_text())
    assert latest["metrics"] == {"attempt": 3}


def test_hung_task_is_killed_at_its_timeout_and_the_retry_succeeds(write_config):
    """Nothing lost: the retry's output is published; the hung attempt left nothing behind."""
    path = write_config(
        f"""
        retry_policy: {{max_backoff: 0.1, jitter: 0}}
        tasks:
          stuck: {{callable: "{SAMPLE}:hang_once", timeout_seconds: 8, retry_count: 1,
                   retry_delay: 0.1, config: {{seconds: 120, ignore_sigterm: true}}}}
        """
    )
    started = time.monotonic()
    config, result = _execute(path)
    assert result.success and time.monotonic() - started < 60
    log = (config.project_root / "logs" / "stuck.log").read_text()
    assert '"status": "TIMEOUT"' in log and '"status": "SUCCESS"' in log
    metrics = json.loads((config.storage_root / "latest" / "stuck.json").read_text())["metrics"]
    assert metrics["attempt"] == 2 and metrics["peak_rss_mib"] > 0
    assert not any((config.storage_root / "runs" / result.run_id / ".staging").iterdir())


DIAMOND = """
execution: {{continue_on_error: {flag}}}
tasks:
  numbers: {{callable: "{sample}:make_numbers"}}
  left: {{callable: "{sample}:bad_schema", depends_on: [numbers]}}
  right: {{callable: "{sample}:square", depends_on: [numbers]}}
  join: {{callable: "{sample}:total", depends_on: [left, right]}}
  side: {{callable: "{sample}:make_numbers"}}
"""


@pytest.mark.parametrize("continue_on_error", [False, True])
def test_fail_fast_and_continue_on_error_on_a_diamond(write_config, continue_on_error):
    """Nothing lost: what succeeded before the failure stays published; nothing downstream of
    the failure runs; with continue_on_error the independent branch finishes too."""
    path = write_config(DIAMOND.format(flag=str(continue_on_error).lower(), sample=SAMPLE))
    config, result = _execute(path)
    assert not result.success
    materialized = {e.step_key for e in _events(result, DagsterEventType.ASSET_MATERIALIZATION)}
    assert "join" not in materialized and "numbers" in materialized
    failed_at = _times(result, DagsterEventType.STEP_FAILURE, "left")[0]
    started_later = {
        e.step_key
        for e in result.entries
        if e.dagster_event.event_type == DagsterEventType.STEP_START and e.timestamp > failed_at
    }
    if continue_on_error:
        assert {"right", "side"} <= materialized
    else:
        assert started_later, "the diamond should still have tasks left after the failure"
        assert not started_later & materialized  # nothing that started after it succeeded
    numbers = json.loads((config.storage_root / "latest" / "numbers.json").read_text())
    record = numbers["artifacts"]["numbers"]
    assert sha256_file(config.storage_root / record["path"]) == record["sha256"]


def test_two_runs_at_once_keep_both_outputs_uncorrupted(write_config):
    """Nothing lost: each run's outputs are complete, valid and hash-verified in its own folder."""
    path = write_config(
        f"""
        tasks:
          numbers: {{callable: "{SAMPLE}:slow_numbers"}}
          square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
        """
    )
    project = path.parent

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "recomart_pipeline", "run"],
            cwd=project,
            env=project_env(project),
            capture_output=True,
            text=True,
            timeout=300,
        )

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run(), range(2)))
    assert all(r.returncode == 0 for r in results), [r.stderr[-1500:] for r in results]
    run_ids = [run_id_of(r.stdout) for r in results]
    assert len(set(run_ids)) == 2
    for run_id in run_ids:
        manifest = json.loads((project / "storage" / "runs" / run_id / "manifest.json").read_text())
        for task in ("numbers", "square"):
            for artifact in manifest["tasks"][task]["outputs"].values():
                assert sha256_file(Path(artifact["path"])) == artifact["sha256"]
        squares = json.loads(
            (project / "storage" / "runs" / run_id / "square" / "squares.json").read_text()
        )
        assert squares == [n * n for n in range(20)]
        # each run's square read its own run's numbers
        inputs = manifest["tasks"]["square"]["inputs"]["numbers"]["numbers"]["path"]
        assert f"/runs/{run_id}/numbers/" in inputs


def test_disk_full_mid_write_keeps_the_previous_output(write_config):
    """Nothing lost: the earlier published output and its checkpoint are untouched and valid;
    the half-written file never becomes visible; the error says disk_full."""
    from recomart_pipeline.runtime.runner import TaskFailure, run_task

    path = write_config(f'tasks:\n  numbers: {{callable: "{SAMPLE}:make_numbers"}}\n')
    config = PipelineConfig(path)
    before = run_task(config, "numbers", "good").checkpoint
    path.write_text(f'tasks:\n  numbers: {{callable: "{SAMPLE}:disk_full_midway"}}\n')
    with pytest.raises(TaskFailure) as excinfo:
        run_task(PipelineConfig(path), "numbers", "full")
    assert excinfo.value.error_class == "disk_full"
    before.verify()
    latest = json.loads((config.storage_root / "latest" / "numbers.json").read_text())
    assert latest["run_id"] == "good"
    assert not (config.storage_root / "runs" / "full" / "numbers").exists()
    assert not any((config.storage_root / "runs" / "full" / ".staging").iterdir())
