"""Dagster's own commands print one short line per task event: ``dagster job execute`` and
``dg launch`` as real processes. The JSON fields stay in the task log files and in Dagster's
event log; ``RECOMART_VERBOSE_CONSOLE=1`` or the run config's ``verbose`` prints them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dagster import DagsterInstance

from recomart_pipeline.orchestration.console import VERBOSE_CONSOLE_ENV
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import JOB_EXECUTE, project_env

pytestmark = pytest.mark.slow

DG = str(Path(sys.executable).with_name("dg"))
LOCATION = ["-m", "recomart_pipeline.definitions"]
PIPELINE = f"""
pipeline: {{name: console}}
tasks:
  numbers: {{callable: "{SAMPLE}:make_numbers", config: {{count: 4}}}}
  square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
"""
QUIET_LAUNCH = json.dumps({"loggers": {"console": {}}})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pipeline_config.yaml").write_text(textwrap.dedent(PIPELINE))
    return tmp_path


def _console(project: Path, args: list[str], **env: str) -> str:
    """What the command prints (stdout and stderr); it must succeed."""
    done = subprocess.run(
        args,
        cwd=project,
        env={**project_env(project), **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _task_lines(output: str, task: str) -> list[str]:
    return [line for line in output.splitlines() if f" {task}: " in line or f" - {task} - " in line]


def _json_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if '{"' in line]


def test_dagster_job_execute_prints_short_lines_and_keeps_the_json_elsewhere(
    project: Path,
) -> None:
    output = _console(project, JOB_EXECUTE)
    assert any(line.endswith(" numbers: wrote numbers (rows=4)") for line in output.splitlines())
    assert any(" square: task succeeded (duration_s=" in line for line in output.splitlines())
    assert any(" RUN_SUCCESS: Finished execution of run" in line for line in output.splitlines())
    assert _json_lines(output) == []
    assert "STEP_START" not in output and " - DEBUG - " not in output
    # Every field is in the task log file and in Dagster's event log (the UI).
    records = [
        json.loads(line) for line in (project / "logs" / "numbers.log").read_text().splitlines()
    ]
    assert any(r["message"] == "wrote numbers" and r["rows"] == 4 for r in records)
    with DagsterInstance.from_config(str(project / "dagster_home")) as instance:
        (run,) = instance.get_runs()
        messages = [
            r.event_log_entry.user_message for r in instance.get_records_for_run(run.run_id).records
        ]
    assert 'wrote numbers {"rows": 4}' in messages
    assert run.run_config == {}  # the short console came from the job's default


def test_the_verbose_switches_bring_the_json_back(project: Path) -> None:
    verbose = _console(project, JOB_EXECUTE, **{VERBOSE_CONSOLE_ENV: "1"})
    assert any(
        line.endswith(' numbers: wrote numbers {"rows": 4}') for line in verbose.splitlines()
    )
    assert any('"input_paths"' in line for line in _task_lines(verbose, "square"))
    # dagster job execute takes a run config file; JSON is YAML
    debug = project / "verbose_console.yaml"
    debug.write_text(
        json.dumps({"loggers": {"console": {"config": {"verbose": True, "log_level": "DEBUG"}}}})
    )
    per_run = _console(project, [*JOB_EXECUTE, "-c", str(debug)])
    assert any(
        line.endswith(' numbers: wrote numbers {"rows": 4}') for line in per_run.splitlines()
    )
    assert " numbers: STEP_START: " in per_run


def test_dg_launch_prints_short_lines(project: Path) -> None:
    job = _console(project, [DG, "launch", "--job", "automated_pipeline_job", *LOCATION])
    assert any(line.endswith(" numbers: wrote numbers (rows=4)") for line in job.splitlines())
    assert _json_lines(job) == []
    # Dagster's implicit asset job has no default run config: the run config names the logger.
    assets = _console(
        project, [DG, "launch", "--assets", "numbers", *LOCATION, "--config-json", QUIET_LAUNCH]
    )
    assert any(line.endswith(" numbers: wrote numbers (rows=4)") for line in assets.splitlines())
    assert _json_lines(assets) == []
