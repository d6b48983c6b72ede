"""The evaluation task: metrics per candidate, selection, gates as blocking checks."""

from __future__ import annotations

import errno
import json
import os
import shutil

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


def _with_validation(store, trained, figures: dict[str, float]):
    """The training checkpoint republished with the given validation NDCG@10 per candidate
    (the same model files): what training would have written had the validation split
    ranked the candidates that way."""
    summary = json.loads(trained.path("training_summary").read_text())
    for name, ndcg in figures.items():
        summary["candidates"][name]["validation"]["ndcg_at_10"] = ndcg
    staging = store.new_staging_dir("run-forged", "training")
    outputs = {}
    for name in trained.artifacts:
        target = staging / trained.path(name).name
        shutil.copyfile(trained.path(name), target)
        outputs[name] = target
    (staging / "training_summary.json").write_text(json.dumps(summary))
    return store.publish("run-forged", "training", staging, outputs, {}, {})


@pytest.fixture
def trained(features, run_model_task):
    """Every candidate refitted (refit: all), so forged validation figures may select any."""
    config = {**CANDIDATES, "validation": {"refit": "all"}}
    _, checkpoint = run_model_task(training, config, {"features": features})
    return checkpoint


def _evaluate(run_model_task, trained, features, config):
    return run_model_task(evaluation, config, {"training": trained, "features": features})


def test_the_selected_candidate_is_scored_next_to_the_baseline(run_model_task, trained, features):
    result, checkpoint = _evaluate(run_model_task, trained, features, {})
    report = json.loads(checkpoint.path("evaluation").read_text())
    assert report["k"] == 10 and report["selection_metric"] == "ndcg_at_10"
    assert report["baseline"] == "popularity"
    # chosen on the validation split among every candidate; only it and the baseline are
    # scored on test
    assert report["selected_on"] == "validation" and report["baseline_fallback"] is False
    assert set(report["validation"]) == {"svd", "als", "popularity"}
    validation_ndcg = {name: m["ndcg_at_10"] for name, m in report["validation"].items()}
    assert report["best_model"] == max(("svd", "als"), key=validation_ndcg.get)
    assert report["best_personalised"] == report["best_model"]
    assert set(report["models"]) == {report["best_model"], "popularity"}
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
    for metrics in [*report["models"].values(), *report["validation"].values()]:
        assert set(metrics) == expected_keys
    assert report["validation"]["als"]["rmse"] is None  # not meaningful for implicit ALS
    ndcg = {name: m["ndcg_at_10"] for name, m in report["models"].items()}
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


def test_the_deploy_candidate_is_the_chosen_file_linked_or_else_copied(
    run_model_task, trained, features, monkeypatch
):
    _, linked = _evaluate(run_model_task, trained, features, {})
    best = json.loads(linked.path("evaluation").read_text())["best_model"]
    chosen = trained.path(f"model_{best}")
    assert os.path.samefile(linked.path("model"), chosen)  # no bytes copied

    def no_links(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    _, copied = _evaluate(run_model_task, trained, features, {})
    assert not os.path.samefile(copied.path("model"), chosen)
    assert copied.path("model").read_bytes() == chosen.read_bytes()
    assert copied.artifacts["model"].sha256 == linked.artifacts["model"].sha256


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


def test_selection_uses_validation_and_the_test_split_is_scored_once(
    run_model_task, store, trained, features
):
    """svd wins on validation (forged figures) although ALS ranks better on test: svd is
    selected, and no test figure of the other candidates is computed or recorded."""
    forged = _with_validation(store, trained, {"svd": 0.9, "als": 0.1, "popularity": 0.05})
    result, checkpoint = _evaluate(run_model_task, forged, features, {})
    report = json.loads(checkpoint.path("evaluation").read_text())
    assert report["selected_on"] == "validation"
    assert report["best_model"] == "svd" and report["best_personalised"] == "svd"
    assert set(report["models"]) == {"svd", "popularity"}  # als never touched the test split
    assert set(report["intervals"]) == {"svd", "popularity"}
    assert report["validation"]["svd"]["ndcg_at_10"] == 0.9
    assert result.metadata["validation"]["als"]["ndcg_at_10"] == 0.1
    assert sha256_file(checkpoint.path("model")) == sha256_file(trained.path("model_svd"))


def test_without_validation_figures_the_test_split_selects_and_says_so(
    run_model_task, trained, features, caplog
):
    _, unvalidated = run_model_task(
        training, {**CANDIDATES, "validation": {"method": "none"}}, {"features": features}
    )
    summary = json.loads(unvalidated.path("training_summary").read_text())
    assert summary["validation"] is None
    assert all(c["validation"] is None for c in summary["candidates"].values())
    with caplog.at_level("WARNING"):
        _, checkpoint = _evaluate(run_model_task, unvalidated, features, {})
    report = json.loads(checkpoint.path("evaluation").read_text())
    assert report["selected_on"] == "test" and report["validation"] == {}
    assert set(report["models"]) == {"svd", "als", "popularity"}
    assert "optimistic" in caplog.text


@pytest.mark.parametrize("popularity_ndcg", [0.5, 0.3])  # ahead of, and tied with, the best
def test_when_nothing_beats_the_baseline_it_is_the_deploy_candidate(
    run_model_task, store, trained, features, popularity_ndcg
):
    forged = _with_validation(
        store, trained, {"svd": 0.1, "als": 0.3, "popularity": popularity_ndcg}
    )
    config = {"gates": {"min": {"ndcg_at_10": 0.01}, "beat_baseline": {"ndcg_at_10": 0.10}}}
    result, checkpoint = _evaluate(run_model_task, forged, features, config)
    report = json.loads(checkpoint.path("evaluation").read_text())
    assert report["best_model"] == "popularity" and report["model_type"] == "popularity"
    assert report["baseline_fallback"] is True and report["best_personalised"] == "als"
    assert set(report["models"]) == {"als", "popularity"}
    assert sha256_file(checkpoint.path("model")) == sha256_file(trained.path("model_popularity"))
    # the gates judge the personalised candidate, for the record, and do not block
    assert {c.severity for c in result.checks} == {"WARN"}
    assert all("for 'als'" in gate["detail"] for gate in report["gates"])
    assert result.metadata["baseline_fallback"] is True


def test_the_fallback_can_be_turned_off(run_model_task, store, trained, features):
    forged = _with_validation(store, trained, {"svd": 0.1, "als": 0.3, "popularity": 0.5})
    config = {"baseline_fallback": False, "gates": {"beat_baseline": {"ndcg_at_10": 0.10}}}
    result, checkpoint = _evaluate(run_model_task, forged, features, config)
    report = json.loads(checkpoint.path("evaluation").read_text())
    assert report["best_model"] == "als" and report["baseline_fallback"] is False
    assert {c.severity for c in result.checks} == {"ERROR"}


def test_a_gate_the_data_cannot_decide_warns_and_block_makes_it_blocking(
    run_model_task, trained, features
):
    few = {"max_eval_users": 25}
    _, probe = _evaluate(run_model_task, trained, features, few)
    report = json.loads(probe.path("evaluation").read_text())
    best, baseline = report["best_model"], report["baseline"]
    value = report["models"][best]["ndcg_at_10"]
    reference = report["models"][baseline]["ndcg_at_10"]
    # a target just above the selected model's point estimate: on points alone it fails
    threshold = round(value / reference - 1 + 0.02, 4)
    gates = {"beat_baseline": {"ndcg_at_10": threshold}}

    result, checkpoint = _evaluate(run_model_task, trained, features, {**few, "gates": gates})
    (check,) = result.checks
    report = json.loads(checkpoint.path("evaluation").read_text())
    assert check.severity == "WARN" and not check.passed
    assert report["gates"][0]["outcome"] == "inconclusive"
    assert report["gates"][0]["blocks"] is False and report["passed"] is True
    low, high = report["gates"][0]["interval"]
    assert low < 0 < high

    strict = {**few, "gates": {**gates, "inconclusive": "block"}}
    result, checkpoint = _evaluate(run_model_task, trained, features, strict)
    (check,) = result.checks
    assert check.severity == "ERROR" and not check.passed
    assert json.loads(checkpoint.path("evaluation").read_text())["passed"] is False

    points = {**few, "gates": gates, "bootstrap_resamples": 0}
    result, _ = _evaluate(run_model_task, trained, features, points)
    (check,) = result.checks
    assert check.severity == "ERROR" and not check.passed  # the point estimate decides
