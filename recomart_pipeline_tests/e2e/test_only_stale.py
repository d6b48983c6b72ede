"""Incremental runs: ``run --only-stale`` (and ``execution.only_stale``) execute only what
changed since its last successful materialization, and the run table says why each task
ran or was skipped. Real CLI runs against a persistent Dagster home."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import (
    DEFAULT_TASKS,
    copy_default_project,
    run_id_of,
    run_in_project,
    task_table,
)

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "recomart_pipeline"]
# copy reads input.txt (an external source); numbers -> square -> total.
PIPELINE = f"""
pipeline: {{name: incremental}}
tasks:
  copy: {{callable: "{SAMPLE}:copy_file", config: {{path: input.txt}}}}
  numbers: {{callable: "{SAMPLE}:make_numbers", config: {{count: 4}}}}
  square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
  total: {{callable: "{SAMPLE}:total", depends_on: [square]}}
"""


def _project(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "pipeline_config.yaml").write_text(textwrap.dedent(PIPELINE) + extra)
    (tmp_path / "input.txt").write_text("first\n")
    return tmp_path


def _run(project: Path, *args: str) -> str:
    done = run_in_project([*CLI, "run", *args], project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _executed(stdout: str) -> set[str]:
    return {task for task, (status, _) in task_table(stdout).items() if status == "SUCCESS"}


def test_right_after_a_run_nothing_is_stale_and_no_run_is_created(tmp_path: Path) -> None:
    project = _project(tmp_path)
    first = run_id_of(_run(project))
    again = _run(project, "--only-stale")
    assert "nothing to run: all 4 task(s) are up to date" in again
    assert " started" not in again  # no Dagster run, no step
    assert task_table(again) == {
        task: ("SKIPPED", f"up to date, reusing run {first}")
        for task in ("copy", "numbers", "square", "total")
    }


def test_the_config_switch_makes_incremental_the_default(tmp_path: Path) -> None:
    project = _project(tmp_path, "execution: {only_stale: true}\n")
    first = _run(project)  # nothing materialized yet: everything is stale
    assert task_table(first)["copy"] == ("SUCCESS", "stale: never materialized")
    assert _executed(_run(project)) == set()
    assert _executed(_run(project, "--all-tasks")) == {"copy", "numbers", "square", "total"}


def test_a_config_edit_runs_that_task_and_its_dependents_only(tmp_path: Path) -> None:
    project = _project(tmp_path)
    first = run_id_of(_run(project))
    changed = _run(project, "--only-stale", "--set", "tasks.numbers.config.count=5")
    table = task_table(changed)
    assert _executed(changed) == {"numbers", "square", "total"}
    assert table["copy"] == ("SKIPPED", f"up to date, reusing run {first}")
    assert "config or implementation changed" in table["numbers"][1]
    assert table["square"][1] == "stale: upstream 'numbers' runs"
    # The YAML edited to what the override said is what was materialized: up to date.
    config = project / "pipeline_config.yaml"
    config.write_text(config.read_text().replace("count: 4", "count: 5"))
    assert _executed(_run(project, "--only-stale")) == set()


def test_a_source_file_runs_again_when_its_content_changes_not_its_time(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    first = run_id_of(_run(project))
    source = project / "input.txt"
    os.utime(source, (1, 1))  # touched, same content
    assert _executed(_run(project, "--only-stale")) == set()
    source.write_text("second\n")
    table = task_table(_run(project, "--only-stale"))
    assert table["copy"] == ("SUCCESS", "stale: its source data changed")
    assert table["numbers"] == ("SKIPPED", f"up to date, reusing run {first}")


def test_an_output_replaced_outside_dagster_is_not_reused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    _run(project)
    debug = run_in_project([*CLI, "task", "numbers"], project)
    assert debug.returncode == 0, debug.stderr[-2000:]
    table = task_table(_run(project, "--only-stale"))
    assert "not materialized by Dagster" in table["numbers"][1]
    assert {t for t, (s, _) in table.items() if s == "SUCCESS"} == {"numbers", "square", "total"}


def test_only_stale_and_resume_exclude_each_other(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = run_in_project([*CLI, "run", "--only-stale", "--resume", "abc"], project)
    assert done.returncode == 2
    assert "--only-stale and --resume exclude each other" in done.stderr


def test_the_default_pipeline_reruns_what_a_change_reaches(tmp_path: Path) -> None:
    project = copy_default_project(tmp_path)
    first = _run(project)
    assert _executed(first) == set(DEFAULT_TASKS)
    assert "nothing to run" in _run(project, "--only-stale")
    retitled = _run(project, "--only-stale", "--set", "tasks.report.config.title=Weekly")
    assert _executed(retitled) == {"report", "deploy", "monitoring"}
    assert task_table(retitled)["training"] == (
        "SKIPPED",
        f"up to date, reusing run {run_id_of(first)}",
    )
    interactions = project / "data" / "interactions.csv"
    lines = interactions.read_text().splitlines(keepends=True)
    interactions.write_text("".join(lines[:-1]))  # one event fewer
    table = task_table(_run(project, "--only-stale"))
    assert table["ingestion"] == ("SUCCESS", "stale: its source data changed")
    assert {t for t, (s, _) in table.items() if s == "SUCCESS"} == set(DEFAULT_TASKS)
