"""Training refits on all its data only the candidates evaluation can select.

With a validation split, evaluation touches only the best personalised candidate (by its
selection metric on validation) and the baseline; the other candidates' full fits were
wasted work (at 20M interactions: 55 of training's 150 s). ``validation.refit: best``
(the default) fits those on the validation split only; ``all`` keeps every file.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from recomart_pipeline.contract.documents import TrainingSummary
from recomart_pipeline.contract.errors import QualityGateError
from recomart_pipeline.tasks import evaluation, report, training
from recomart_pipeline.tasks.specs import training as training_spec

CANDIDATES = [
    {"model_type": "svd", "params": {"n_factors": 8, "n_epochs": 10, "learning_rate": 0.02}},
    {
        "model_type": "als",
        "params": {"n_factors": 8, "alpha": 5.0, "regularization": 1.0, "n_iterations": 8},
    },
    {"model_type": "bias"},
]


def _train(run_model_task, features, **validation):
    config = {"candidates": CANDIDATES, "validation": validation}
    return run_model_task(training, config, {"features": features})


def _best_personal(summary: dict, metric: str, maximise: bool = True) -> str:
    """The winner on validation, worked out here from the figures training recorded."""
    values = {
        name: entry["validation"][metric]
        for name, entry in summary["candidates"].items()
        if not entry["baseline"] and entry["validation"].get(metric) is not None
    }
    return (max if maximise else min)(values, key=values.__getitem__)


def test_only_the_best_on_validation_and_the_baseline_get_model_files(run_model_task, features):
    result, checkpoint = _train(run_model_task, features)
    summary = json.loads(checkpoint.path("training_summary").read_text())
    best = _best_personal(summary, "ndcg_at_10")
    assert set(checkpoint.artifacts) == {f"model_{best}", "model_popularity", "training_summary"}
    for name, entry in summary["candidates"].items():
        refitted = name in (best, "popularity")
        assert (entry["artifact"] is not None) == refitted, name
        assert (entry["not_refit"] is None) == refitted, name
        assert entry["validation"]["ndcg_at_10"] is not None  # every candidate was validated
        assert (f"{name}_fit_seconds" in result.metrics) == refitted, name
    losers = [n for n in summary["candidates"] if n not in (best, "popularity")]
    assert losers and all(
        f"'{best}' was better by ndcg_at_10" in summary["candidates"][n]["not_refit"]
        for n in losers
    )
    assert result.metrics["candidates_refitted"] == 2
    assert result.metrics["candidates_trained"] == 4
    # where each candidate's fits ran, refitted or validated only
    assert set(result.metadata["trained_on"]) == set(summary["candidates"])


def test_evaluation_selects_the_refitted_candidate(run_model_task, features):
    _, trained = _train(run_model_task, features)
    summary = json.loads(trained.path("training_summary").read_text())
    _, evaluated = run_model_task(evaluation, {}, {"training": trained, "features": features})
    chosen = json.loads(evaluated.path("evaluation").read_text())
    assert chosen["selected_on"] == "validation"
    assert chosen["best_personalised"] == _best_personal(summary, "ndcg_at_10")


def test_a_different_selection_metric_in_evaluation_stops_with_the_fix(run_model_task, features):
    _, trained = _train(run_model_task, features)
    summary = json.loads(trained.path("training_summary").read_text())
    assert _best_personal(summary, "rmse", maximise=False) != _best_personal(summary, "ndcg_at_10")
    with pytest.raises(QualityGateError, match="did not refit") as raised:
        run_model_task(
            evaluation, {"selection_metric": "rmse"}, {"training": trained, "features": features}
        )
    assert "validation.selection_metric to rmse" in raised.value.hint


def test_training_refits_by_the_metric_it_is_given(run_model_task, features):
    _, trained = _train(run_model_task, features, selection_metric="rmse")
    summary = json.loads(trained.path("training_summary").read_text())
    best = _best_personal(summary, "rmse", maximise=False)
    assert best in ("svd", "bias")  # the rating models are the only ones with an RMSE
    assert f"model_{best}" in trained.artifacts and "model_als" not in trained.artifacts
    _, evaluated = run_model_task(
        evaluation, {"selection_metric": "rmse"}, {"training": trained, "features": features}
    )
    assert json.loads(evaluated.path("evaluation").read_text())["best_personalised"] == best


def test_refit_all_keeps_every_candidate_file(run_model_task, features):
    result, trained = _train(run_model_task, features, refit="all")
    summary = json.loads(trained.path("training_summary").read_text())
    assert {f"model_{n}" for n in summary["candidates"]} <= set(trained.artifacts)
    assert all(entry["not_refit"] is None for entry in summary["candidates"].values())
    assert result.metrics["candidates_refitted"] == 4


def test_without_a_validation_split_every_candidate_is_refitted(run_model_task, features):
    _, trained = _train(run_model_task, features, method="none")
    summary = json.loads(trained.path("training_summary").read_text())
    assert {f"model_{n}" for n in summary["candidates"]} <= set(trained.artifacts)


def test_the_report_names_the_candidates_validated_only(run_model_task, features):
    _, trained = _train(run_model_task, features)
    summary = TrainingSummary.model_validate_json(trained.path("training_summary").read_text())
    lines = report._left_out_lines(summary)
    losers = [n for n, e in summary.trained().items() if e.not_refit is not None]
    assert losers and set(summary.refitted()) == set(summary.trained()) - set(losers)
    assert lines == [
        f"- validated only, not refitted: **{n}**: {summary.candidates[n].not_refit}"
        for n in losers
    ]


def test_an_unknown_refit_metric_is_refused_with_the_known_ones():
    with pytest.raises(ValidationError, match=r"unknown metric\(s\) \['ndcg_at_5'\].*ndcg_at_10"):
        training_spec.ValidationConfig.model_validate({"selection_metric": "ndcg_at_5"})
    with pytest.raises(ValidationError, match="refit"):
        training_spec.ValidationConfig.model_validate({"refit": "some"})
