"""The run table speaks the guide's status words (issue 15, point 5): a task that never
started because of fail-fast or a failed dependency is SKIPPED with the reason, a stopped
task is TIMEOUT, and a task a resume reused is SUCCESS (reused from run X)."""

from __future__ import annotations

import sys

import pytest

from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import (
    RESUMABLE_PIPELINE,
    run_id_of,
    run_in_project,
    table_start,
)

pytestmark = pytest.mark.slow


def _rows(stdout: str) -> dict[str, str]:
    table = stdout[table_start(stdout) :].splitlines()[1:-1]
    return {line.split()[0]: line for line in table}


def test_fail_fast_skips_what_never_started_and_timeouts_are_named(write_config):
    path = write_config(
        f"""
        execution: {{mode: sequential, continue_on_error: false}}
        tasks:
          a_slow: {{callable: "{SAMPLE}:hang", timeout_seconds: 1, retry_count: 0, config: {{seconds: 30}}}}
          b_after: {{callable: "{SAMPLE}:square", depends_on: [a_slow]}}
          c_independent: {{callable: "{SAMPLE}:make_numbers"}}
        """
    )
    done = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], path.parent)
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    rows = _rows(done.stdout)
    assert rows["a_slow"].split()[1] == "TIMEOUT"
    assert rows["b_after"].split()[1] == "SKIPPED"
    assert "dependency 'a_slow' did not succeed" in rows["b_after"]
    assert rows["c_independent"].split()[1] == "SKIPPED"
    assert "fail-fast" in rows["c_independent"]
    assert "NOT RUN" not in done.stdout


def test_a_resume_shows_reused_tasks_as_success_from_their_run(write_config):
    path = write_config(RESUMABLE_PIPELINE.format(sample=SAMPLE))
    project = path.parent
    failed = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], project)
    failed_run = run_id_of(failed.stdout)
    assert _rows(failed.stdout)["finish"].split()[1] == "FAILURE"
    (project / "flag.txt").write_text("present")
    resumed = run_in_project(
        [sys.executable, "-m", "recomart_pipeline", "run", "--resume", failed_run], project
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr[-2000:]
    rows = _rows(resumed.stdout)
    for task in ("numbers", "square"):
        assert rows[task].split()[1] == "SUCCESS"
        assert f"reused from run {failed_run}" in rows[task]
    assert rows["finish"].split()[1] == "SUCCESS"
