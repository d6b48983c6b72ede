"""The evaluation task: metrics per candidate, selection, gates as blocking checks."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from recomart_pipeline.contract.errors import QualityGateError, UpstreamArtifactError
from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.ml.persistence import ModelIntegrityError, load_model
from recomart_pipeline.tasks import evaluation, training
from recomart_pipeline.tasks.specs import evaluation as evaluation_spec

CANDIDATES = {
    "candidates": [
        {
            "model_type": "svd",
            "params": {
                "n_factors": 8,
                "n_epochs": 30,
                "learning_rate": 0.02,
                "regularization": 0.1,
            },
        },
        {
            "model_type": "als",
            "params": {"n_factors": 8, "alpha": 5.0, "regularization": 1.0, "n_iterations": 8},
        },
    ]
}


@pytest.fixture
def trained(features, run_model_task):
    _, checkpoint = run_model_task(training, CANDIDATES, {"features": features})
    return checkpoint


def _evaluate(run_model_task, trained, features, config):
    return run_model_task(evaluation, config, {"training": trained, "features": features})


def test_every_candidate_is_scored_next_to_the_baseline(run_model_task, trained, features):
    result, checkpoint = _evaluate(run_model_task, trained, features, {})
    report = json.loads(checkpoint.path("evaluation").read_text())
    assert report["k"] == 10 and report["selection_metric"] == "ndcg_at_10"
    assert report["baseline"] == "popularity"
    assert set(report["models"]) == {"svd", "als", "popularity"}
    expected_keys = {
        "rmse",
        "mae",
        "precision_at_10",
        "recall_at_10",
        "ndcg_at_10",
        "map_at_10",
        "hit_rate_at_10",
        "coverage_at_10",
    }
    for metrics in report["models"].values():
        assert set(metrics) == expected_keys
    assert report["models"]["als"]["rmse"] is None  # not meaningful for implicit ALS
    ndcg = {name: m["ndcg_at_10"] for name, m in report["models"].items()}
    assert report["best_model"] == max(("svd", "als"), key=ndcg.get)
    assert ndcg[report["best_model"]] > ndcg["popularity"]
    assert report["gates"] == [] and report["passed"] is True
    # every ranking metric has a 95 % interval over the evaluated users around its value
    assert report["bootstrap_resamples"] == 200 and report["test_interactions"] > 0
    for name, metrics in report["models"].items():
        low, high = report["intervals"][name]["ndcg_at_10"]
        assert low <= metrics["ndcg_at_10"] <= high and low < high
    # the deploy candidate is a byte copy of the chosen file, and its hash is recorded
    model_path = checkpoint.path("model")
    assert sha256_file(model_path) == report["model_sha256"]
    assert sha256_file(trained.path(f"model_{report['best_model']}")) == report["model_sha256"]
    assert (
        load_model(model_path, expected_sha256=report["model_sha256"]).model_type
        == (report["model_type"])
    )
    assert result.metrics == report["models"][report["best_model"]]


def test_gates_become_blocking_checks(run_model_task, trained, features):
    config = {
        "gates": {
            "min": {"ndcg_at_10": 0.05, "recall_at_10": 0.999},
            "beat_baseline": {"ndcg_at_10": 0.10},
        }
    }
    specs = evaluation_spec.declare_checks(evaluation_spec.Config.model_validate(config))
    assert [s.name for s in specs] == [
        "gate_min_ndcg_at_10",
        "gate_min_recall_at_10",
        "gate_beat_baseline_ndcg_at_10",
    ]
    assert {s.severity for s in specs} == {"ERROR"}

    result, checkpoint = _evaluate(run_model_task, trained, features, config)
    outcomes = {c.name: c for c in result.checks}
    assert set(outcomes) == {s.name for s in specs}
    assert all(c.severity == "ERROR" for c in outcomes.values())
    assert outcomes["gate_min_ndcg_at_10"].passed
    assert outcomes["gate_beat_baseline_ndcg_at_10"].passed
    failed = outcomes["gate_min_recall_at_10"]
    assert not failed.passed and "required >= 0.999" in failed.description
    report = json.loads(checkpoint.path("evaluation").read_text())
    assert report["passed"] is False
    assert [g["passed"] for g in report["gates"]] == [True, False, True]


def test_selecting_by_rmse_picks_the_rating_model_and_gates_use_lower_is_better(
    run_model_task, trained, features
):
    config = {
        "selection_metric": "rmse",
        "gates": {"max": {"rmse": 5.0, "mae": 0.01}, "beat_baseline": {"rmse": 0.10}},
    }
    result, checkpoint = _evaluate(run_model_task, trained, features, config)
    report = json.loads(checkpoint.path("evaluation").read_text())
    assert report["best_model"] == "svd"  # the only candidate with an RMSE
    assert report["higher_is_better"] is False
    models = report["models"]
    assert models["svd"]["rmse"] <= 0.9 * models["popularity"]["rmse"]
    outcomes = {c.name: c.passed for c in result.checks}
    assert outcomes == {
        "gate_max_rmse": True,
        "gate_max_mae": False,
        "gate_beat_baseline_rmse": True,
    }


def test_beating_the_baseline_by_an_impossible_margin_fails(run_model_task, trained, features):
    config = {"gates": {"beat_baseline": {"ndcg_at_10": 100.0, "rmse": 0.99}}}
    result, _ = _evaluate(run_model_task, trained, features, config)
    outcomes = {c.name: c for c in result.checks}
    assert not outcomes["gate_beat_baseline_ndcg_at_10"].passed
    # the selected model is ALS (best NDCG), which has no RMSE: the gate cannot pass
    assert not outcomes["gate_beat_baseline_rmse"].passed
    assert "not available" in outcomes["gate_beat_baseline_rmse"].description


def test_rmse_selection_with_only_implicit_candidates_is_an_error(features, run_model_task):
    only_als = {"candidates": [{"model_type": "als", "params": {"n_iterations": 2}}]}
    _, trained = run_model_task(training, only_als, {"features": features})
    with pytest.raises(QualityGateError, match="no candidate has a value for selection metric"):
        _evaluate(run_model_task, trained, features, {"selection_metric": "rmse"})


def test_a_modified_model_file_is_refused(run_model_task, trained, features):
    path = trained.path("model_als")
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="modified or replaced"):
        _evaluate(run_model_task, trained, features, {})


def test_unsaved_models_cannot_be_evaluated(features, run_model_task):
    _, trained = run_model_task(training, {"save_model": False}, {"features": features})
    with pytest.raises(UpstreamArtifactError, match="save_model: true"):
        _evaluate(run_model_task, trained, features, {})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"selection_metric": "ndcg_at_5"}, "unknown metric"),
        ({"k": 5, "gates": {"min": {"ndcg_at_10": 0.1}}}, "gates.min"),
        ({"gates": {"between": {}}}, "between"),
    ],
)
def test_invalid_evaluation_configs_are_refused(config, message):
    with pytest.raises(ValidationError, match=message):
        evaluation_spec.Config.model_validate(config)


def test_direction_is_inferred_from_the_metric():
    assert evaluation_spec.Config.model_validate({"selection_metric": "rmse"}).maximise is False
    assert evaluation_spec.Config.model_validate({"k": 5}).metric == "ndcg_at_5"
    assert evaluation_spec.Config.model_validate({"k": 5}).maximise is True


def test_every_test_user_is_ranked_below_the_default_cap(run_model_task, trained, features):
    assert evaluation_spec.Config().max_eval_users == evaluation_spec.DEFAULT_MAX_EVAL_USERS
    _, checkpoint = _evaluate(run_model_task, trained, features, {})
    report = json.loads(checkpoint.path("evaluation").read_text())
    assert report["eval_users"] == report["test_users"] > 0
    assert report["eval_users_sampled"] is False
    _, uncapped = _evaluate(run_model_task, trained, features, {"max_eval_users": None})
    assert json.loads(uncapped.path("evaluation").read_text())["models"] == report["models"]


def test_a_capped_evaluation_ranks_a_seeded_sample_and_says_so(
    run_model_task, trained, features, caplog
):
    config = {"max_eval_users": 50}
    with caplog.at_level("INFO"):
        _, first = _evaluate(run_model_task, trained, features, config)
    report = json.loads(first.path("evaluation").read_text())
    assert report["eval_users"] == 50 < report["test_users"]
    assert report["eval_users_sampled"] is True
    assert any("seeded sample of 50 of" in r.getMessage() for r in caplog.records)
    _, again = _evaluate(run_model_task, trained, features, config)
    assert json.loads(again.path("evaluation").read_text())["models"] == report["models"]
    _, everyone = _evaluate(run_model_task, trained, features, {"max_eval_users": None})
    ranked_all = json.loads(everyone.path("evaluation").read_text())["models"]
    assert ranked_all["als"]["ndcg_at_10"] != report["models"]["als"]["ndcg_at_10"]
    assert ranked_all["als"]["rmse"] == report["models"]["als"]["rmse"]  # all ratings, always
