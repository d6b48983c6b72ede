"""Real ``dagster`` and project CLI processes against a throwaway project and Dagster home."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from recomart_pipeline_tests.conftest import REPO_ROOT, SAMPLE
from recomart_pipeline_tests.helpers import (
    DAGSTER,
    JOB_EXECUTE,
    RESUMABLE_PIPELINE,
    project_env,
    run_id_of,
    run_in_project,
    table_start,
)

pytestmark = pytest.mark.slow


def _latest_run_status(project: Path) -> DagsterRunStatus:
    with DagsterInstance.from_config(str(project / "dagster_home")) as instance:
        runs = instance.get_runs(limit=1)
        assert runs, "no run recorded in the Dagster home"
        return runs[0].status


def test_definitions_validate_accepts_good_and_rejects_bad_config(sample_project):
    project = sample_project.parent
    good = run_in_project(
        [DAGSTER, "definitions", "validate", "-m", "recomart_pipeline.definitions"], project
    )
    assert good.returncode == 0, good.stderr
    sample_project.write_text(sample_project.read_text().replace("[numbers]", "[numbrs]", 1))
    bad = run_in_project(
        [DAGSTER, "definitions", "validate", "-m", "recomart_pipeline.definitions"], project
    )
    assert bad.returncode != 0
    assert "depends on unknown task 'numbrs'" in bad.stdout + bad.stderr


def test_dagster_job_execute_runs_the_whole_job(sample_project):
    project = sample_project.parent
    done = run_in_project(
        JOB_EXECUTE,
        project,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    latest = json.loads((project / "storage" / "latest" / "total.json").read_text())
    assert latest["metrics"] == {"total": 28}
    assert _latest_run_status(project) == DagsterRunStatus.SUCCESS


def test_dagster_asset_materialize_one_task(sample_project):
    project = sample_project.parent
    first = run_in_project(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "recomart_pipeline.definitions",
            "--select",
            "numbers",
        ],
        project,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_in_project(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "recomart_pipeline.definitions",
            "--select",
            "square",
        ],
        project,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    squares = json.loads((project / "storage" / "latest" / "square.json").read_text())["artifacts"][
        "squares"
    ]["path"]
    assert json.loads((project / "storage" / squares).read_text()) == [0, 1, 4, 9]


def test_project_cli_run_prints_progress_and_a_table(sample_project):
    project = sample_project.parent
    done = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], project)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "numbers        started" in done.stdout
    assert "check sum_large_enough: passed" in done.stdout
    table = done.stdout[table_start(done.stdout) :]
    for task in ("numbers", "square", "square_again", "total"):
        assert any(line.startswith(task) and "SUCCESS" in line for line in table.splitlines())
    assert _latest_run_status(project) == DagsterRunStatus.SUCCESS


def test_project_cli_parallel_mode_and_failure_exit_code(write_config):
    path = write_config(
        f"""
        execution: {{mode: parallel, continue_on_error: true}}
        resources: {{max_cpu_cores: 2}}
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
          square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
          bad: {{callable: "{SAMPLE}:bad_schema"}}
          after_bad: {{callable: "{SAMPLE}:total", depends_on: [bad]}}
        """
    )
    done = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], path.parent)
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    rows = {
        line.split()[0]: line for line in done.stdout[table_start(done.stdout) :].splitlines()[1:-1]
    }
    assert "SUCCESS" in rows["square"]
    assert "FAILURE" in rows["bad"] and "schema_error" in rows["bad"]
    assert "SUCCESS" not in rows["after_bad"]


def test_project_cli_validate_and_plan(sample_project):
    project = sample_project.parent
    plan = run_in_project([sys.executable, "-m", "recomart_pipeline", "plan", "--json"], project)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["parallel_groups"] == [
        ["numbers"],
        ["square", "square_again"],
        ["total"],
    ]
    sample_project.write_text(sample_project.read_text() + "  broken:\n    retry_count: -1\n")
    bad = run_in_project([sys.executable, "-m", "recomart_pipeline", "validate"], project)
    assert bad.returncode == 2
    assert "tasks.broken.retry_count: must be ≥ 0 (got -1)" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_runs_listing_export_and_reproduce(write_config):
    path = write_config(
        f"""
        tasks:
          copy: {{callable: "{SAMPLE}:copy_file"}}
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
        """
    )
    project = path.parent
    (project / "input.txt").write_text("version 1")
    first = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], project)
    assert first.returncode == 0, first.stdout + first.stderr[-2000:]
    run_id = run_id_of(first.stdout)
    listing = run_in_project([sys.executable, "-m", "recomart_pipeline", "runs"], project)
    assert run_id in listing.stdout and "SUCCESS" in listing.stdout
    exported = run_in_project(
        [sys.executable, "-m", "recomart_pipeline", "runs", "export", "--format", "csv"], project
    )
    assert exported.stdout.splitlines()[0].startswith("run_id,state,started_at,duration_s")
    assert exported.stdout.splitlines()[1].startswith(f"{run_id},SUCCESS,")

    same = run_in_project([sys.executable, "-m", "recomart_pipeline", "reproduce", run_id], project)
    assert same.returncode == 0, same.stdout + same.stderr[-2000:]
    assert "identical outputs" in same.stdout

    (project / "input.txt").write_text("version 2")
    changed = run_in_project(
        [sys.executable, "-m", "recomart_pipeline", "reproduce", run_id], project
    )
    assert changed.returncode == 1
    # one line per task, then a line per differing output
    assert re.search(r"^copy +DIFFERENT: copy \(1 output\)$", changed.stdout, re.M)
    assert re.search(r"^ +copy: sha256 \w+… → \w+…$", changed.stdout, re.M)
    assert re.search(r"^numbers +identical \(1 output\)$", changed.stdout, re.M)


def test_resume_reexecutes_only_from_the_failure(write_config):
    path = write_config(RESUMABLE_PIPELINE.format(sample=SAMPLE))
    project = path.parent
    failed = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], project)
    assert failed.returncode == 1
    failed_run = run_id_of(failed.stdout)
    (project / "flag.txt").write_text("now present")
    resumed = run_in_project(
        [sys.executable, "-m", "recomart_pipeline", "run", "--resume", failed_run], project
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr[-2000:]
    new_run = run_id_of(resumed.stdout)
    latest = project / "storage" / "latest"
    assert json.loads((latest / "numbers.json").read_text())["run_id"] == failed_run
    assert json.loads((latest / "square.json").read_text())["run_id"] == failed_run
    assert json.loads((latest / "finish.json").read_text())["run_id"] == new_run


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)  # polling interval; the condition is re-checked each time
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def test_watchdog_fails_a_run_whose_worker_was_killed(write_config):
    path = write_config(
        f"""
        tasks:
          hang: {{callable: "{SAMPLE}:hang", timeout_seconds: 300, config: {{seconds: 300}}}}
        """
    )
    project = path.parent
    env = project_env(project) | {"RECOMART_HEARTBEAT_SECONDS": "0.5"}
    worker = subprocess.Popen(
        JOB_EXECUTE,
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def child_pid() -> int | None:
            for beat in (project / "storage" / "runs").glob("*/heartbeats/*.json"):
                children = json.loads(beat.read_text()).get("children")
                if children:
                    return children[0]
            return None

        orphan = _wait_for(child_pid, 120, "the task's child process")
        worker.kill()  # the run worker dies; Dagster alone would leave the run STARTED
        worker.wait()
        assert _alive(orphan)
        assert _latest_run_status(project) == DagsterRunStatus.STARTED

        def watchdog_found_it() -> bool:
            done = subprocess.run(
                [sys.executable, "-m", "recomart_pipeline", "watchdog"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            return "marked FAILURE" in done.stdout

        _wait_for(watchdog_found_it, 60, "the watchdog to see the dead worker")
        assert _latest_run_status(project) == DagsterRunStatus.FAILURE
        _wait_for(lambda: not _alive(orphan), 10, "the orphan to be killed")
        # the operator fixes the cause and resumes the dead run from its failure
        with DagsterInstance.from_config(str(project / "dagster_home")) as instance:
            dead_run = instance.get_runs(limit=1)[0].run_id
        path.write_text(path.read_text().replace("seconds: 300}", "seconds: 0}"))
        resumed = run_in_project(
            [sys.executable, "-m", "recomart_pipeline", "run", "--resume", dead_run], project
        )
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr[-2000:]
        assert _latest_run_status(project) == DagsterRunStatus.SUCCESS
    finally:
        if worker.poll() is None:
            worker.kill()


def test_run_set_overrides_are_validated_applied_and_recorded(sample_project):
    project = sample_project.parent
    bad = run_in_project(
        [
            sys.executable,
            "-m",
            "recomart_pipeline",
            "run",
            "--set",
            "tasks.numbers.config.count=-2",
        ],
        project,
    )
    assert bad.returncode == 2
    assert "--set:1 tasks.numbers.config.count: must be ≥ 0 (got -2)" in bad.stderr
    good = run_in_project(
        [sys.executable, "-m", "recomart_pipeline", "run", "--set", "tasks.numbers.config.count=6"],
        project,
    )
    assert good.returncode == 0, good.stdout + good.stderr[-2000:]
    run_id = run_id_of(good.stdout)
    manifest = json.loads((project / "storage" / "runs" / run_id / "manifest.json").read_text())
    assert manifest["overrides"] == ["tasks.numbers.config.count=6"]
    assert manifest["tasks"]["total"]["metrics"] == {"total": 2 * sum(n * n for n in range(6))}
    with DagsterInstance.from_config(str(project / "dagster_home")) as instance:
        run = instance.get_run_by_id(run_id)
        assert json.loads(run.tags["recomart/overrides"]) == ["tasks.numbers.config.count=6"]


def test_programmatic_api_and_the_guide_script(sample_project):
    project = sample_project.parent
    script = REPO_ROOT / "run_dagster_pipeline.py"
    done = run_in_project([sys.executable, str(script)], project)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "pipeline succeeded" in done.stdout
    assert _latest_run_status(project) == DagsterRunStatus.SUCCESS
    sample_project.write_text(
        sample_project.read_text().replace("count: 4", "count: 4, minimum_sum: 999")
    )
    failed = run_in_project([sys.executable, str(script)], project)
    assert failed.returncode == 1 and "pipeline FAILED" in failed.stdout


def test_task_command_runs_one_task_outside_dagster(sample_project, tmp_path):
    project = sample_project.parent
    numbers = tmp_path / "numbers.json"
    numbers.write_text("[3, 4]")
    out = tmp_path / "debug"
    done = run_in_project(
        [
            sys.executable,
            "-m",
            "recomart_pipeline",
            "task",
            "square",
            "--input",
            f"numbers={numbers}",
            "--output",
            str(out),
        ],
        project,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    written = next(out.glob("runs/*/square/squares.json"))
    assert json.loads(written.read_text()) == [9, 16]
    assert not (project / "storage" / "latest" / "square.json").exists()  # main storage untouched
    missing = run_in_project([sys.executable, "-m", "recomart_pipeline", "task", "square"], project)
    assert missing.returncode == 1 and "upstream task 'numbers' has no checkpoint" in missing.stderr
