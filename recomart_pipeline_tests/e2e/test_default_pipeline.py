"""The shipped default pipeline, end to end through Dagster, as `make run` runs it."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.e2e.test_dagster_cli import _run

pytestmark = pytest.mark.slow
TASKS = [
    "ingestion",
    "validation",
    "preparation",
    "features",
    "training",
    "evaluation",
    "inference",
    "report",
    "deploy",
    "monitoring",
]


def _project(tmp_path, data_from=None):
    shutil.copy(REPO_ROOT / "pipeline_config.yaml", tmp_path / "pipeline_config.yaml")
    if data_from is None:
        shutil.copytree(REPO_ROOT / "data", tmp_path / "data")
    return tmp_path


def _rows(stdout: str) -> dict[str, str]:
    table = stdout[stdout.index("task ") :].splitlines()[1:-1]
    return {line.split()[0]: line.split()[1] for line in table}


def test_default_pipeline_runs_end_to_end_on_the_bundled_sample(tmp_path):
    project = _project(tmp_path)
    done = _run([sys.executable, "-m", "recomart_pipeline", "run"], project, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _rows(done.stdout) == dict.fromkeys(TASKS, "SUCCESS")
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
    assert evaluation["models"]["svd"]["rmse"] < baseline["rmse"]  # the rating model beats it too
    champion = json.loads((storage / "registry" / "champion.json").read_text())
    assert champion["version"] == "v0001"
    assert "data:image/png;base64," in (project / "reports" / "latest.html").read_text()


def test_default_pipeline_on_a_dirty_generated_set(tmp_path):
    project = _project(tmp_path, data_from="generated")
    generate_dataset(
        project / "data",
        users=400,
        items=150,
        interactions=20000,
        seed=9,
        dirty_fraction=0.05,
        file_format="csv",
    )
    done = _run(
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
