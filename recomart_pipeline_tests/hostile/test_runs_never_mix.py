"""Blocking checks are a real gate and runs never mix (issue 14, points 2 and 3).

An output whose ERROR checks failed stays in its run folder for inspection but never becomes
``latest``, and no later task reads it unless the user names it with
``--allow-failed-checks``. A resumed run reads its own and its parents' checkpoints, never
a newer run's ``latest``; the manifest says which run every input came from.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.runtime.artifacts import InputPolicy
from recomart_pipeline.runtime.records import read_manifest
from recomart_pipeline.runtime.runner import TaskFailure, run_task
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import RESUMABLE_PIPELINE, run_id_of, run_in_project

PIPELINE = f"""
tasks:
  numbers: {{callable: "{SAMPLE}:make_numbers", config: {{count: 5, minimum_sum: 0}}}}
  square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
"""


def _gate(path: Path, minimum_sum: int) -> PipelineConfig:
    """The pipeline with numbers' blocking check set to pass (0) or fail (1000)."""
    return PipelineConfig(path, overrides=[f"tasks.numbers.config.minimum_sum={minimum_sum}"])


def _latest(config: PipelineConfig, task: str) -> str:
    pointer = config.storage_root / "latest" / f"{task}.json"
    return str(json.loads(pointer.read_text())["run_id"])


def _input_runs(config: PipelineConfig, run_id: str, task: str) -> dict[str, str]:
    manifest = read_manifest(config.storage_root, run_id) or {}
    return dict(manifest["tasks"][task]["input_runs"])


def test_an_output_that_failed_its_blocking_check_never_becomes_latest(write_config):
    path = write_config(PIPELINE)
    good = run_task(_gate(path, 0), "numbers", "good")
    assert not good.failed_blocking_checks
    failed = run_task(_gate(path, 1000), "numbers", "failed")

    config = _gate(path, 0)
    assert [c.name for c in failed.failed_blocking_checks] == ["sum_large_enough"]
    assert _latest(config, "numbers") == "good"
    assert failed.checkpoint.path("numbers").exists()  # kept for inspection
    blocked = json.loads((config.storage_root / "latest" / "numbers.blocked.json").read_text())
    assert blocked["run_id"] == "failed" and blocked["blocked"] == ["sum_large_enough"]
    manifest = read_manifest(config.storage_root, "failed") or {}
    assert manifest["tasks"]["numbers"]["failed_blocking_checks"] == ["sum_large_enough"]


def test_a_later_task_reads_the_last_good_output_and_says_why(write_config):
    path = write_config(PIPELINE)
    run_task(_gate(path, 0), "numbers", "good")
    run_task(_gate(path, 1000), "numbers", "failed")
    config = _gate(path, 0)

    outcome = run_task(config, "square", "later")  # like `task square` or `run --select square`
    assert json.loads(outcome.checkpoint.path("squares").read_text()) == [0, 1, 4, 9, 16]
    assert _input_runs(config, "later", "square") == {"numbers": "good"}
    log = (config.project_root / "logs" / "square.log").read_text()
    assert "the newest output of 'numbers' (run failed) failed its blocking checks" in log


def test_the_run_whose_check_failed_cannot_feed_its_own_downstream(write_config):
    path = write_config(PIPELINE)
    run_task(_gate(path, 0), "numbers", "good")
    run_task(_gate(path, 1000), "numbers", "failed")
    with pytest.raises(TaskFailure) as failure:
        run_task(_gate(path, 1000), "square", "failed")
    message = failure.value.message
    assert "'numbers' in run failed failed its blocking check(s) sum_large_enough" in message
    assert "--allow-failed-checks numbers" in str(failure.value.__cause__.hint)  # type: ignore[union-attr]
    assert not (_gate(path, 0).storage_root / "runs" / "failed" / "square").exists()


def test_only_a_failed_output_exists_and_nothing_reads_it_unasked(write_config):
    path = write_config(PIPELINE)
    run_task(_gate(path, 1000), "numbers", "failed")
    with pytest.raises(TaskFailure, match="failed its blocking check"):
        run_task(_gate(path, 1000), "square", "later")


def test_reading_a_failed_output_on_request_is_recorded(write_config):
    path = write_config(PIPELINE)
    run_task(_gate(path, 0), "numbers", "good")
    run_task(_gate(path, 1000), "numbers", "failed")
    config = _gate(path, 1000)
    policy = InputPolicy(runs=("override",), allow_failed_checks=frozenset({"numbers"}))
    run_task(config, "square", "override", inputs_from=policy)
    entry = (read_manifest(config.storage_root, "override") or {})["tasks"]["square"]
    assert entry["input_runs"] == {"numbers": "failed"}
    assert entry["inputs_with_failed_checks"] == {"numbers": ["sum_large_enough"]}


def test_a_good_output_clears_the_blocked_pointer(write_config):
    path = write_config(PIPELINE)
    run_task(_gate(path, 1000), "numbers", "failed")
    run_task(_gate(path, 0), "numbers", "fixed")
    config = _gate(path, 0)
    assert _latest(config, "numbers") == "fixed"
    assert not (config.storage_root / "latest" / "numbers.blocked.json").exists()


def test_a_run_never_falls_back_to_latest_for_a_task_it_selected(write_config):
    path = write_config(PIPELINE)
    config = _gate(path, 0)
    run_task(config, "numbers", "other")
    policy = InputPolicy(runs=("mine",), latest=frozenset())
    with pytest.raises(TaskFailure, match=r"no checkpoint .* for run mine"):
        run_task(config, "square", "mine", inputs_from=policy)


def test_a_resume_never_reads_a_newer_run(write_config):
    path = write_config(PIPELINE)
    config = _gate(path, 0)
    run_task(config, "numbers", "parent")
    run_task(PipelineConfig(path, overrides=["tasks.numbers.config.count=7"]), "numbers", "newer")
    resumed = InputPolicy(runs=("child", "parent"), latest=frozenset())  # numbers: selected
    outcome = run_task(config, "square", "child", inputs_from=resumed)
    assert json.loads(outcome.checkpoint.path("squares").read_text()) == [0, 1, 4, 9, 16]

    shutil.rmtree(config.storage_root / "runs" / "parent" / "numbers")
    with pytest.raises(TaskFailure) as failure:
        resumed = InputPolicy(runs=("child2", "parent"), latest=frozenset())
        run_task(config, "square", "child2", inputs_from=resumed)
    assert "nor in the run(s) it resumes (parent)" in failure.value.message
    assert "a resume never reads another run's outputs" in failure.value.message


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_in_project([sys.executable, "-m", "recomart_pipeline", *args], project)


def _run_id(result: subprocess.CompletedProcess[str]) -> str:
    return run_id_of(result.stdout)


@pytest.mark.slow
def test_select_after_a_failed_gate_needs_the_flag_and_records_it(write_config):
    path = write_config(PIPELINE)
    project = path.parent
    gated = _cli(project, "run", "--set", "tasks.numbers.config.minimum_sum=1000")
    assert gated.returncode == 1, gated.stdout + gated.stderr[-2000:]
    assert not (project / "storage" / "latest" / "numbers.json").exists()

    refused = _cli(project, "run", "--select", "square")
    assert refused.returncode == 1
    assert "failed its blocking check(s) sum_large_enough" in refused.stdout + refused.stderr

    allowed = _cli(project, "run", "--select", "square", "--allow-failed-checks", "numbers")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr[-2000:]
    manifest = read_manifest(project / "storage", _run_id(allowed)) or {}
    entry = manifest["tasks"]["square"]
    assert entry["input_runs"] == {"numbers": _run_id(gated)}
    assert entry["inputs_with_failed_checks"] == {"numbers": ["sum_large_enough"]}


@pytest.mark.slow
def test_cli_resume_reads_the_resumed_run_not_a_later_one(write_config):
    path = write_config(RESUMABLE_PIPELINE.format(sample=SAMPLE))
    project = path.parent
    first = _cli(project, "run")
    assert first.returncode == 1
    parent = _run_id(first)
    later = _cli(project, "run", "--set", "tasks.numbers.config.count=9")
    assert later.returncode == 1  # a later run with other settings moves latest
    assert json.loads((project / "storage/latest/square.json").read_text())["run_id"] != parent
    (project / "flag.txt").write_text("present")

    square = project / "storage" / "runs" / parent / "square"
    square.rename(square.with_name("square-moved"))
    missing = _cli(project, "run", "--resume", parent)
    assert missing.returncode == 1
    assert "a resume never reads another run's outputs" in missing.stdout + missing.stderr

    square.with_name("square-moved").rename(square)
    resumed = _cli(project, "run", "--resume", parent)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr[-2000:]
    manifest = read_manifest(project / "storage", _run_id(resumed)) or {}
    assert manifest["tasks"]["finish"]["input_runs"] == {"square": parent}
    result = json.loads(Path(manifest["tasks"]["finish"]["outputs"]["result"]["path"]).read_text())
    assert result["squares"] == [0, 1, 4, 9, 16]  # the parent's 5 numbers, not the later 9
