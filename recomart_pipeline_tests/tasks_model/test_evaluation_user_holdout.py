"""The evaluation task under user_holdout: held-out users are ranked from their fold-in
history by every candidate, and the report says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recomart_pipeline.runtime.artifacts import ArtifactStore, Checkpoint
from recomart_pipeline.tasks import evaluation, training
from recomart_pipeline_tests.ml.synthetic import SyntheticData
from recomart_pipeline_tests.tasks_model.conftest import RUN_ID, RunTask
from recomart_pipeline_tests.tasks_model.real_features import run_features

HELD_OUT = 120
CANDIDATES = {
    "candidates": [
        {"model_type": "ease"},
        {
            "model_type": "als",
            "params": {"n_factors": 8, "alpha": 5.0, "regularization": 1.0, "n_iterations": 8},
        },
    ]
}


@pytest.fixture
def holdout_features(store: ArtifactStore, synthetic: SyntheticData, tmp_path: Path) -> Checkpoint:
    """Features of the synthetic world with its last users held out of training whole."""
    staging = store.new_staging_dir(RUN_ID, "features")
    result = run_features(synthetic, staging, tmp_path / "features-input", held_out_users=HELD_OUT)
    return store.publish(RUN_ID, "features", staging, result.outputs, result.metrics, {})


def _report(run_model_task: RunTask, features: Checkpoint) -> dict:
    _, trained = run_model_task(training, CANDIDATES, {"features": features})
    upstream = {"training": trained, "features": features}
    _, checkpoint = run_model_task(evaluation, {}, upstream)
    report: dict = json.loads(checkpoint.path("evaluation").read_text())
    return report


def test_held_out_users_are_ranked_from_their_history(run_model_task, holdout_features, synthetic):
    report = _report(run_model_task, holdout_features)
    assert report["protocol"] == "user_holdout"
    # every held-out user with a held-out positive (a test rating >= 4) is evaluated, and no
    # one else
    test = synthetic.test_ratings
    liked = (test.users >= synthetic.train.n_users - HELD_OUT) & (test.values >= 4)
    assert report["eval_users"] == report["test_users"] == len(set(test.users[liked]))
    best, baseline = report["best_model"], report["baseline"]
    assert best in ("ease", "als")
    assert report["models"][best]["ndcg_at_10"] > 1.3 * report["models"][baseline]["ndcg_at_10"]


def test_users_seen_in_training_are_evaluated_as_before(run_model_task, features):
    report = _report(run_model_task, features)
    assert report["protocol"] is None
    assert report["eval_users"] > HELD_OUT  # the training users, not a held-out share
