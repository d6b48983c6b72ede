"""The console shows one short line per task event; the JSON fields stay in the log files and
in Dagster's event log (the UI), and ``--verbose`` prints them. Real CLI runs."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import run_id_of, run_in_project

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "recomart_pipeline"]
PIPELINE = f"""
pipeline: {{name: console}}
tasks:
  numbers: {{callable: "{SAMPLE}:make_numbers", config: {{count: 4}}}}
  square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pipeline_config.yaml").write_text(textwrap.dedent(PIPELINE))
    return tmp_path


def _cli(project: Path, *args: str) -> tuple[str, str]:
    done = run_in_project([*CLI, *args], project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout, done.stderr


def _json_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if '{"' in line]


def test_run_prints_short_lines_and_keeps_the_json_elsewhere(project: Path) -> None:
    stdout, stderr = _cli(project, "run")
    assert "  numbers        wrote numbers (rows=4)" in stdout
    assert "  numbers        task succeeded (duration_s=" in stdout
    assert "rows=4, sum=6)" in stdout  # the task's scalar metrics
    assert "task started" not in stdout  # Dagster's "started" line says it already
    assert _json_lines(stdout + stderr) == []
    # The log files hold every field as JSON lines.
    records = [
        json.loads(line) for line in (project / "logs" / "numbers.log").read_text().splitlines()
    ]
    wrote = next(r for r in records if r["message"] == "wrote numbers")
    assert wrote["rows"] == 4 and wrote["task"] == "numbers"
    assert any("input_paths" in r and "config" in r for r in records)
    # So does Dagster's event log, which the UI shows.
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(project / "dagster_home")))
    messages = [
        r.event_log_entry.user_message
        for r in instance.get_records_for_run(run_id_of(stdout)).records
        if r.event_log_entry.dagster_event is None
    ]
    assert 'wrote numbers {"rows": 4}' in messages


def test_verbose_run_prints_the_fields(project: Path) -> None:
    stdout, _ = _cli(project, "run", "--verbose")
    assert '  numbers        wrote numbers {"rows": 4}' in stdout
    assert '"input_paths"' in stdout


def test_task_prints_short_lines_unless_verbose(project: Path) -> None:
    _, quiet = _cli(project, "task", "numbers")
    assert "[numbers] wrote numbers (rows=4)" in quiet
    assert _json_lines(quiet) == []
    _, verbose = _cli(project, "task", "numbers", "--verbose")
    assert '[numbers] wrote numbers {"rows": 4}' in verbose


def test_reproduce_does_not_stream_dagster_debug_events(project: Path) -> None:
    run_id = run_id_of(_cli(project, "run")[0])
    stdout, stderr = _cli(project, "reproduce", run_id)
    output = stdout + stderr
    assert " - DEBUG - " not in output and "STEP_START" not in output
    assert "  numbers        wrote numbers (rows=4)" in stderr
    assert _json_lines(output) == []
    assert stdout.startswith("task ")  # stdout is the comparison alone
    assert f"reproduced {run_id} as" in stdout
