"""`reproduce` of the shipped default pipeline, through the real CLI: an unchanged run is
identical, task by task; changed data is named where it shows."""

from __future__ import annotations

import re
import sys

import pytest

from recomart_pipeline_tests.helpers import (
    DEFAULT_TASKS,
    copy_default_project,
    run_in_project,
    table_start,
    task_rows,
)

pytestmark = pytest.mark.slow

# Outputs that depend on state outside the run (documented in the README's reproduce
# section) and the note `reproduce` prints for each: every other output is byte-identical.
STABLE_CONTENT_NOTES = {
    ("report", "report_md"): 'same apart from the "What changed" section',
    ("report", "report_html"): 'same apart from the "What changed" section',
    ("report", "report_summary"): "same apart from report_path (named after the run id)",
    ("deploy", "deployment"): "same apart from status, promoted (the registry's state before",
    ("monitoring", "monitoring_report"): "not compared: it is the drift from the previous run",
}


def _reproduce(project, run_id: str):
    done = run_in_project(
        [sys.executable, "-m", "recomart_pipeline", "reproduce", run_id], project, timeout=600
    )
    table = done.stdout[table_start(done.stdout) :].splitlines()[1:-1]
    verdicts: dict[str, str] = {}
    notes: dict[tuple[str, str], str] = {}
    task = ""
    for line in table:
        if not line.startswith(" "):
            task, verdict = line.split(maxsplit=1)
            verdicts[task] = verdict
        else:
            artifact, note = line.strip().split(": ", 1)
            notes[(task, artifact)] = note
    return done, verdicts, notes


def test_reproducing_an_unchanged_run_is_identical_for_every_task(tmp_path, monkeypatch):
    # A fresh numba cache: the run compiles the model kernels, the reproduction loads them
    # (the case where ALS used to give other factors).
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    project = copy_default_project(tmp_path)
    run = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], project, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert task_rows(run.stdout) == dict.fromkeys(DEFAULT_TASKS, "SUCCESS")
    run_id = re.search(r"^run (\S+): SUCCESS$", run.stdout, re.M).group(1)

    done, verdicts, notes = _reproduce(project, run_id)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert list(verdicts) == DEFAULT_TASKS  # one line per task, in execution order
    assert all(v.startswith("identical (") for v in verdicts.values()), verdicts
    assert set(notes) == set(STABLE_CONTENT_NOTES), notes
    for key, expected in STABLE_CONTENT_NOTES.items():
        assert notes[key].startswith(expected), (key, notes[key])
    assert done.stdout.rstrip().endswith(": identical outputs")

    # A real change: the interactions file is edited after the run, so the reproduction
    # ingests other data, and every output that depends on it is named.
    interactions = next((project / "data").glob("interactions.*"))
    lines = interactions.read_text().splitlines(keepends=True)
    interactions.write_text("".join(lines[:-50]))
    changed, verdicts, _ = _reproduce(project, run_id)
    assert changed.returncode != 0
    assert verdicts["ingestion"].startswith("DIFFERENT: interactions ("), verdicts
    assert verdicts["training"].startswith("DIFFERENT: model_"), verdicts
    assert changed.stdout.rstrip().endswith(": outputs differ")
