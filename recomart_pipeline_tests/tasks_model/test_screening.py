"""Training's validation screening, through the task: a candidate clearly behind the best
personalised one stops after the screening sample of users and says so in the summary; the
others' figures, the refit choice and the files are those of validating without screening."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from recomart_pipeline.contract.documents import TrainingSummary
from recomart_pipeline.runtime.artifacts import ArtifactStore, Checkpoint
from recomart_pipeline.tasks import report, training
from recomart_pipeline.tasks.specs.training import Config
from recomart_pipeline_tests.ml.synthetic import make_synthetic
from recomart_pipeline_tests.tasks_model.conftest import RUN_ID
from recomart_pipeline_tests.tasks_model.real_features import run_features

CANDIDATES = [
    {"name": "item_knn", "model_type": "item_knn", "params": {"k": 50}},
    {"name": "bias", "model_type": "bias"},
    {"name": "twin", "model_type": "item_knn", "params": {"k": 50}},
]
BLOCK = 500


@pytest.fixture(scope="module")
def many_users(tmp_path_factory: pytest.TempPathFactory) -> tuple[ArtifactStore, Checkpoint]:
    """The features task's checkpoint for a world with well over BLOCK validation users."""
    root = tmp_path_factory.mktemp("screening")
    store = ArtifactStore(root / "storage")
    data = make_synthetic(n_users=1400, n_items=150, per_user=20, seed=3)
    staging = store.new_staging_dir(RUN_ID, "features")
    result = run_features(data, staging, root / "features-input")
    return store, store.publish(RUN_ID, "features", staging, result.outputs, result.metrics, {})


def _summary(checkpoint: Checkpoint) -> dict:
    summary: dict = json.loads(checkpoint.path("training_summary").read_text())
    return summary


@pytest.fixture
def trained(run_model_task, many_users):
    _, features = many_users

    def train(screen_users: int | None):
        config = {"candidates": CANDIDATES, "validation": {"screen_users": screen_users}}
        return run_model_task(training, config, {"features": features})

    return train


def test_a_candidate_clearly_behind_stops_after_the_screening_sample(trained):
    _, screened = trained(BLOCK)
    summary, screened_artifacts = _summary(screened), set(screened.artifacts)
    _, plain = trained(None)  # (the same run and task: it replaces the first's files)
    reference = _summary(plain)
    n_users = summary["validation"]["users"]
    assert n_users > BLOCK and summary["validation"]["screen_users"] == BLOCK
    assert "screen_users" not in reference["validation"]

    bias = summary["candidates"]["bias"]
    assert bias["screened_out"].startswith(
        f"stopped after {BLOCK:,} of {n_users:,} validation users: ndcg_at_10 "
    )
    assert "against 'item_knn'" in bias["screened_out"]
    figure = bias["validation"]["ndcg_at_10"]
    assert figure < summary["candidates"]["item_knn"]["validation"]["ndcg_at_10"]
    # its figure is the sample's, not the one over every user
    assert figure != reference["candidates"]["bias"]["validation"]["ndcg_at_10"]

    for name in ("item_knn", "twin", "popularity"):  # ranked for every user: same figures
        entry = summary["candidates"][name]
        assert entry["screened_out"] is None, name
        assert entry["validation"] == reference["candidates"][name]["validation"], name
    # the same candidates refitted, from the same fits
    for name, entry in summary["candidates"].items():
        assert entry["artifact"] == reference["candidates"][name]["artifact"], name
        assert entry["sha256"] == reference["candidates"][name]["sha256"], name
    assert screened_artifacts == set(plain.artifacts)


def test_the_report_says_why_a_candidate_has_sample_figures(trained):
    _, screened = trained(BLOCK)
    lines = report._left_out_lines(TrainingSummary.model_validate(_summary(screened)))
    (line,) = [line for line in lines if "**bias**" in line]
    assert "validated only, not refitted" in line and f"stopped after {BLOCK:,} of" in line


def test_screening_off_or_with_fewer_users_than_the_sample_changes_nothing(
    run_model_task, features
):
    """The small shared world has fewer validation users than any allowed sample."""
    config = {"candidates": CANDIDATES, "validation": {"screen_users": BLOCK}}
    _, checkpoint = run_model_task(training, config, {"features": features})
    summary = _summary(checkpoint)
    assert "screen_users" not in summary["validation"]
    assert all(entry["screened_out"] is None for entry in summary["candidates"].values())


def test_the_sample_has_a_floor():
    with pytest.raises(ValidationError, match="screen_users"):
        Config.model_validate({"validation": {"screen_users": 50}})


def test_the_candidate_best_on_the_sample_leads_whatever_the_order(run_model_task, many_users):
    """Listed first, the weak candidate is still compared with the strongest one: every
    candidate is ranked for the sample before any is ranked for the rest."""
    _, features = many_users
    config = {
        "candidates": [CANDIDATES[1], *CANDIDATES[::2]],
        "validation": {"screen_users": BLOCK},
    }
    _, checkpoint = run_model_task(training, config, {"features": features})
    summary = _summary(checkpoint)
    assert summary["candidate_order"][:3] == ["bias", "item_knn", "twin"]
    assert "against 'item_knn'" in summary["candidates"]["bias"]["screened_out"]
    assert summary["candidates"]["twin"]["screened_out"] is None
