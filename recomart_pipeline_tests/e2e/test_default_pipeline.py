"""The shipped default pipeline, end to end through Dagster, as `make run` runs it."""

from __future__ import annotations

import json
import sys

import pytest

from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline_tests.helpers import (
    DEFAULT_TASKS,
    copy_default_project,
    run_in_project,
    task_rows,
)

pytestmark = pytest.mark.slow


def test_default_pipeline_runs_end_to_end_on_the_bundled_sample(tmp_path):
    project = copy_default_project(tmp_path)
    done = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], project, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert task_rows(done.stdout) == dict.fromkeys(DEFAULT_TASKS, "SUCCESS")
    storage = project / "storage"
    evaluation_pointer = json.loads((storage / "latest" / "evaluation.json").read_text())
    evaluation = json.loads(
        (storage / evaluation_pointer["artifacts"]["evaluation"]["path"]).read_text()
    )
    best, baseline = (
        evaluation["models"][evaluation["best_model"]],
        evaluation["models"]["popularity"],
    )
    assert evaluation["passed"] and best["ndcg_at_10"] > 1.1 * baseline["ndcg_at_10"]
    assert evaluation["selected_on"] == "validation"
    validation = evaluation["validation"]  # every candidate; test only the selected + baseline
    assert validation["svd"]["rmse"] < validation["popularity"]["rmse"]  # the rating model too
    champion = json.loads((storage / "registry" / "champion.json").read_text())
    assert champion["version"] == "v0001"
    assert "data:image/png;base64," in (project / "reports" / "latest.html").read_text()


def test_default_pipeline_on_a_dirty_generated_set(tmp_path):
    project = copy_default_project(tmp_path, data_from="generated")
    generate_dataset(
        project / "data",
        users=400,
        items=150,
        interactions=20000,
        seed=9,
        dirty_fraction=0.05,
        file_format="csv",
    )
    done = run_in_project(
        [
            sys.executable,
            "-m",
            "recomart_pipeline",
            "run",
            "--select",
            "ingestion",
            "validation",
            "preparation",
            "features",
        ],
        project,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    validation = json.loads((project / "storage" / "latest" / "validation.json").read_text())
    assert validation["metrics"]["rows_quarantined"] > 0
    assert validation["metrics"]["rows_valid"] + validation["metrics"]["rows_quarantined"] == 20000
