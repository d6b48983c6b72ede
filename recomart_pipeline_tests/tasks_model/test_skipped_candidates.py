"""Candidates that do not apply to the data are skipped with their reason, not fatal."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
import yaml

from recomart_pipeline.contract.documents import TrainingSummary
from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.ml.popularity import PopularityRecommender
from recomart_pipeline.tasks import evaluation, training
from recomart_pipeline_tests.conftest import REPO_ROOT

FAST_SVD = {"n_factors": 8, "n_epochs": 10, "learning_rate": 0.02, "regularization": 0.1}
FAST_ALS = {"n_factors": 8, "n_iterations": 4}


def _default_pipeline_config(task: str) -> dict:
    config = yaml.safe_load((REPO_ROOT / "pipeline_config.yaml").read_text())
    return config["tasks"][task].get("config", {})


def _summary(checkpoint) -> dict:
    return json.loads(checkpoint.path("training_summary").read_text())


def test_the_implicit_only_features_have_no_ratings(implicit_features):
    ratings = pd.read_parquet(implicit_features.path("train_ratings"))
    assert len(ratings) == 0
    assert implicit_features.metrics["test_interactions"] > 0


def test_the_default_config_runs_on_purchase_and_view_data(
    implicit_features, run_model_task, caplog
):
    training_config = _default_pipeline_config("training")
    names = [c["name"] for c in training_config["candidates"]]
    shipped = ["svd", "bias", "als", "ease", "item_knn", "popularity"]
    assert names == shipped  # the shipped default under test

    with caplog.at_level(logging.WARNING, logger="recomart.test.training"):
        result, trained = run_model_task(training, training_config, {"features": implicit_features})
    summary = _summary(trained)
    svd = summary["candidates"]["svd"]
    assert "needs explicit ratings" in svd["skipped"]
    assert svd["artifact"] is None and svd["history"] == [] and svd["n_train"] == 0
    assert "svd_fit_seconds" not in result.metrics  # fit times are metrics, of fitted ones
    assert "needs explicit ratings" in summary["candidates"]["bias"]["skipped"]
    assert summary["candidates"]["als"]["skipped"] is None
    assert summary["candidates"]["popularity"]["skipped"] is None
    assert summary["candidates"]["ease"]["skipped"] is None
    assert summary["candidate_order"] == shipped
    assert "model_svd" not in trained.artifacts
    # refit: best: the winner on validation and the baseline have files; the rest were
    # validated only
    refitted = set(TrainingSummary.model_validate(summary).refitted())
    assert "popularity" in refitted and len(refitted) == 2
    assert {f"model_{n}" for n in refitted} <= set(trained.artifacts)
    assert {"als", "ease", "item_knn"} - refitted == {
        n for n, c in summary["candidates"].items() if c["not_refit"] is not None
    }
    assert set(result.metadata["skipped"]) == {"svd", "bias"}
    assert result.metrics["candidates_trained"] == 4
    assert result.metrics["candidates_skipped"] == 2
    assert "note" not in result.metadata  # ALS trained: not the baseline-only case
    assert any("skipped candidate 'svd'" in r.getMessage() for r in caplog.records)

    evaluation_config = _default_pipeline_config("evaluation")
    result, evaluated = run_model_task(
        evaluation, evaluation_config, {"training": trained, "features": implicit_features}
    )
    report = json.loads(evaluated.path("evaluation").read_text())
    # the selected one and the baseline; which item model wins depends on the validation
    # split (temporal_per_user since the validation protocol follows the test's)
    assert report["best_model"] in {"ease", "item_knn"} and report["best_model"] in refitted
    assert set(report["models"]) == {report["best_model"], "popularity"}
    assert set(result.metadata["skipped"]) == {"svd", "bias"}


def test_only_the_baseline_left_runs_on_with_it_alone(implicit_features, run_model_task, caplog):
    config = {"svd": FAST_SVD}  # no candidates: svd, bias, popularity; two need ratings
    with caplog.at_level(logging.WARNING, logger="recomart.test.training"):
        result, trained = run_model_task(training, config, {"features": implicit_features})
    summary = _summary(trained)
    assert summary["candidate_order"] == ["svd", "bias", "popularity"]
    assert set(result.metadata["skipped"]) == {"svd", "bias"}
    assert "baseline 'popularity' alone" in result.metadata["note"]
    assert any("baseline 'popularity' alone" in r.getMessage() for r in caplog.records)

    result, evaluated = run_model_task(
        evaluation, {}, {"training": trained, "features": implicit_features}
    )
    report = json.loads(evaluated.path("evaluation").read_text())
    assert set(report["models"]) == {"popularity"}
    assert report["best_model"] == "popularity"


def test_rating_data_skips_nothing(features, run_model_task):
    config = {
        "svd": FAST_SVD,
        "als": FAST_ALS,
        "candidates": [{"model_type": "svd"}, {"model_type": "als"}, {"model_type": "bias"}],
    }
    result, trained = run_model_task(training, config, {"features": features})
    summary = _summary(trained)
    assert all(entry["skipped"] is None for entry in summary["candidates"].values())
    assert "skipped" not in result.metadata and result.metrics["candidates_skipped"] == 0


def test_a_baseline_that_cannot_train_is_a_clear_error(
    implicit_features, run_model_task, monkeypatch
):
    # The features task never writes data without interactions (the case where popularity
    # does not apply: see the ml tests of skip_reason), so the baseline is told it does not.
    reason = "popularity needs interactions and the training data has none"
    monkeypatch.setattr(PopularityRecommender, "skip_reason", lambda self, train: reason)
    config = {"candidates": [{"model_type": "als", "params": FAST_ALS}]}
    with pytest.raises(DataValidationError, match=r"no candidate can train.*'popularity'"):
        run_model_task(training, config, {"features": implicit_features})


def test_summaries_written_before_skipping_existed_still_load():
    old_entry = {
        "model_type": "popularity",
        "params": {},
        "seed": None,
        "baseline": True,
        "predicts_ratings": True,
        "fit_seconds": 0.1,
        "n_train": 10,
        "n_validation": 0,
        "history": [],
        "best_epoch": None,
        "stopped_early": False,
        "artifact": "model_popularity",
        "file": "model_popularity.npz",
        "sha256": "0" * 64,
    }
    summary = TrainingSummary.model_validate(
        {
            "model_name": "m",
            "model_format": "npz",
            "baseline": "popularity",
            "candidate_order": ["popularity"],
            "candidates": {"popularity": old_entry},
        }
    )
    assert summary.trained() == summary.ordered() and summary.skipped() == {}
