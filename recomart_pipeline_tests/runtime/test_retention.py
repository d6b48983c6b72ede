"""Retention: old outputs go; latest checkpoints and inputs of kept runs stay."""

from __future__ import annotations

import os
import time

from recomart_pipeline import PipelineConfig
from recomart_pipeline.cli import main
from recomart_pipeline.runtime.retention import apply_retention, plan_retention
from recomart_pipeline.runtime.runner import run_task

DAY = 86400


def _age(folder, days: float) -> None:
    old = time.time() - days * DAY
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (old, old))


def test_old_outputs_are_deleted_but_latest_and_used_inputs_are_kept(sample_project, capsys):
    config = PipelineConfig(sample_project)
    runs = config.storage_root / "runs"
    run_task(config, "numbers", "old")  # superseded below: deletable once old
    run_task(config, "numbers", "used")  # read by the young run "new": must stay
    run_task(config, "square", "new")
    run_task(config, "square", "stale")  # latest square after this, but will be aged
    for run_id, task in [("old", "numbers"), ("used", "numbers"), ("stale", "square")]:
        _age(runs / run_id / task, 40)
    _age(runs / "old", 40)

    main(["housekeeping", "--config", str(sample_project), "--dry-run"])
    out = capsys.readouterr().out
    assert "dry run: 1 folder(s) would be deleted" in out
    assert (runs / "old" / "numbers").exists()

    actions = {(a.path.parent.name, a.task): a.action for a in plan_retention(config)}
    assert actions[("old", "numbers")] == "delete"
    assert actions[("used", "numbers")] == "keep: latest checkpoint"
    assert actions[("stale", "square")] == "keep: latest checkpoint"
    assert actions[("new", "square")].startswith("keep: younger than")

    deleted = apply_retention(config, plan_retention(config))
    assert runs / "old" / "numbers" in deleted and runs / "old" in deleted
    assert not (runs / "old").exists()
    assert (runs / "used" / "numbers").exists() and (runs / "stale" / "square").exists()


def test_inputs_of_a_kept_run_survive_even_when_not_latest(sample_project):
    config = PipelineConfig(sample_project)
    runs = config.storage_root / "runs"
    run_task(config, "numbers", "input-run")
    run_task(config, "square", "young")  # reads numbers from input-run
    run_task(config, "numbers", "newer")  # now latest numbers
    _age(runs / "input-run" / "numbers", 40)
    actions = {(a.path.parent.name, a.task): a.action for a in plan_retention(config)}
    assert actions[("input-run", "numbers")] == "keep: used by kept run young"
