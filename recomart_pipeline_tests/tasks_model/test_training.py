"""The training task: the guide's config keys, candidates, outputs and summary."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import ValidationError

from recomart_pipeline.contract.errors import UpstreamArtifactError
from recomart_pipeline.ml.persistence import load_model, sidecar_path
from recomart_pipeline.tasks import training
from recomart_pipeline.tasks.specs import training as training_spec
from recomart_pipeline_tests.conftest import FIXTURES

FAST_SVD = {"n_factors": 8, "n_epochs": 15, "learning_rate": 0.02, "regularization": 0.1}


def test_the_user_guide_training_block_trains_svd_and_the_baselines(features, run_model_task):
    guide = yaml.safe_load((FIXTURES / "guide" / "05_training_config.yaml").read_text())
    # every candidate refitted, to check each file (refit: best is test_refit.py's)
    config = {**guide["tasks"]["training"]["config"], "validation": {"refit": "all"}}
    result, checkpoint = run_model_task(training, config, {"features": features})

    artifacts = {"model_svd", "model_bias", "model_popularity", "training_summary"}
    assert set(checkpoint.artifacts) == artifacts
    summary = json.loads(checkpoint.path("training_summary").read_text())
    assert summary["model_name"] == "collaborative_filtering"
    assert summary["baseline"] == "popularity"
    assert summary["candidate_order"] == ["svd", "bias", "popularity"]
    bias = summary["candidates"]["bias"]
    assert bias["model_type"] == "baseline_bias" and bias["predicts_ratings"] is True
    assert bias["baseline"] is False and bias["skipped"] is None
    svd = summary["candidates"]["svd"]
    assert svd["model_type"] == "collaborative_filtering_svd"
    assert svd["params"]["n_factors"] == 50 and svd["params"]["learning_rate"] == 0.005
    assert svd["params"]["validation_fraction"] == pytest.approx(0.2)
    assert svd["seed"] == 42 and svd["file"] == "model_svd.pkl"
    assert svd["n_validation"] > 0 and 1 <= len(svd["history"]) <= 20
    assert set(svd["history"][0]) == {"epoch", "train_rmse", "val_rmse"}
    # pickle (as the guide asks) comes with its hash, which matches the checkpoint's record
    path = checkpoint.path("model_svd")
    assert sidecar_path(path).read_text().split()[0] == svd["sha256"]
    assert checkpoint.artifacts["model_svd"].sha256 == svd["sha256"]
    assert load_model(path).predict([0], [0]).shape == (1,)
    assert result.metrics["svd_val_rmse"] == svd["history"][-1]["val_rmse"]
    assert result.metrics["svd_fit_seconds"] > 0


def test_candidates_share_seed_and_block_defaults_but_can_override(features, run_model_task):
    config = {
        "seed": 7,
        "svd": FAST_SVD,
        "candidates": [
            {"name": "svd_small", "model_type": "svd", "params": {"n_factors": 4}},
            {"model_type": "als", "params": {"n_factors": 8, "n_iterations": 3}},
            {"name": "pop", "model_type": "popularity", "params": {"count": "confidence"}},
        ],
        "early_stopping": {"enabled": False},
        "train_test_split": 1.0,
        "validation": {"refit": "all"},
    }
    result, checkpoint = run_model_task(training, config, {"features": features})
    summary = json.loads(checkpoint.path("training_summary").read_text())
    assert summary["candidate_order"] == ["svd_small", "als", "pop"]
    assert summary["baseline"] == "pop"  # a listed popularity model is the baseline
    small = summary["candidates"]["svd_small"]
    assert small["params"]["n_factors"] == 4 and small["params"]["n_epochs"] == 15
    assert small["params"]["seed"] == 7 and small["params"]["patience"] == 0
    assert small["n_validation"] == 0 and len(small["history"]) == 15
    als = summary["candidates"]["als"]
    assert als["seed"] == 7 and als["predicts_ratings"] is False
    assert [r["epoch"] for r in als["history"]] == [1, 2, 3]
    assert {"model_svd_small", "model_als", "model_pop"} <= set(checkpoint.artifacts)
    assert checkpoint.path("model_als").suffix == ".npz"
    assert result.metrics["als_val_rmse"] is None


def test_save_model_false_writes_only_the_summary(features, run_model_task):
    config = {"svd": FAST_SVD, "save_model": False}
    _, checkpoint = run_model_task(training, config, {"features": features})
    assert set(checkpoint.artifacts) == {"training_summary"}
    summary = json.loads(checkpoint.path("training_summary").read_text())
    assert summary["candidates"]["svd"]["sha256"] is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model_type": "deep_magic"}, "unknown model_type 'deep_magic'"),
        ({"svd": {"n_factor": 5}}, "n_factor"),
        ({"svd": {"seed": 1}}, "seed"),  # task-wide: set it at the top or in a candidate
        ({"candidates": [{"model_type": "als", "params": {"alpha": -1}}]}, "candidate 'als'"),
        ({"candidates": [{"model_type": "svd"}, {"model_type": "svd"}]}, "unique"),
        ({"candidates": [{"name": "Bad Name"}]}, "pattern"),
        ({"model_format": "joblib"}, "model_format"),
        ({"train_test_split": 0}, "train_test_split"),
    ],
)
def test_invalid_configs_are_refused_when_loaded(config, message):
    with pytest.raises(ValidationError, match=message):
        training_spec.Config.model_validate(config)


def test_every_config_field_is_documented():
    def fields(model):
        for name, field in model.model_fields.items():
            yield name, field
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                yield from fields(annotation)

    for model in (training_spec.Config, training_spec.CandidateConfig):
        for name, field in fields(model):
            assert field.description, name
            assert not field.is_required(), name


def test_missing_upstream_artifact_names_the_dependency(store, run_model_task):
    staging = store.new_staging_dir("run-model-tests", "other")
    (staging / "x.txt").write_text("x")
    other = store.publish("run-model-tests", "other", staging, {"x": staging / "x.txt"}, {}, {})
    with pytest.raises(UpstreamArtifactError, match="needs input 'train_ratings'"):
        run_model_task(training, {}, {"other": other})
