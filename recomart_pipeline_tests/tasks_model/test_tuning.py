"""Hyper-parameter tuning in the training task: config checks, trials on the validation split
only, the best setting refitted on all training data, reproducible, budget enforced."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from recomart_pipeline.contract.documents import TrainingSummary
from recomart_pipeline.ml.data import load_training_data
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.params import FloatRange, IntRange
from recomart_pipeline.ml.persistence import load_model
from recomart_pipeline.ml.tuning import tune
from recomart_pipeline.tasks import report, training
from recomart_pipeline.tasks.specs.training import Config

SPACE = {
    "regularization": {"type": "float", "low": 0.05, "high": 50.0, "log": True},
    "n_factors": {"type": "int", "low": 2, "high": 12},
    "confidence": {"type": "categorical", "choices": ["linear", "log"]},
}


def _config(**tuning: Any) -> dict[str, Any]:
    return {
        "seed": 3,
        "als": {"n_factors": 4, "n_iterations": 4},
        "candidates": [{"model_type": "als"}, {"model_type": "popularity"}],
        "tuning": {"candidates": {"als": {"space": SPACE}}, "n_trials": 5, **tuning},
    }


def _summary(checkpoint) -> dict[str, Any]:
    return json.loads(checkpoint.path("training_summary").read_text())


def test_tuning_picks_the_best_validation_trial_and_refits_it_on_all_data(features, run_model_task):
    result, checkpoint = run_model_task(training, _config(), {"features": features})
    summary = _summary(checkpoint)
    record = summary["tuning"]["als"]
    trials = record["trials"]
    assert [t["number"] for t in trials] == list(range(5)) and record["stopped"] == "n_trials"
    assert record["metric"] == "ndcg_at_10" and record["direction"] == "maximize"
    # trial 0 is the configured setting; the best is the highest validation figure
    assert trials[0]["params"] == {"regularization": 5.0, "n_factors": 4, "confidence": "linear"}
    best = max(trials, key=lambda t: t["value"])
    assert record["best"]["params"] == best["params"]
    als = summary["candidates"]["als"]
    assert {k: als["params"][k] for k in SPACE} == best["params"]
    # its validation figures are the best trial's, and the saved model is the refit on all
    # training data: the same fit as one made here on the task's whole input
    assert als["validation"]["ndcg_at_10"] == pytest.approx(best["value"])
    saved = load_model(checkpoint.path("model_als"))
    train = load_training_data(features.path("train_ratings"), features.path("train_implicit"))
    refit = create_model("als", als["params"])
    refit.fit(train)
    np.testing.assert_array_equal(
        saved.to_arrays()["item_factors"], refit.to_arrays()["item_factors"]
    )
    assert als["n_train"] == train.interactions().nnz  # all of it, not the reduced split
    assert result.metrics["als_tuning_trials"] == 5
    assert result.metadata["tuning"]["als"]["curve"][-1] == pytest.approx(best["value"])
    # the report's training section shows the search, without its (run-dependent) times
    lines = report._tuning_lines(TrainingSummary.model_validate(summary))
    text = "\n".join(lines)
    assert f"best: trial {record['best']['number']}" in text
    assert (
        f"{best['value']:.4f}" in text
        and f"the configured setting: {trials[0]['value']:.4f}" in text
    )
    assert sum(line.startswith("| ") for line in lines) == 1 + len(trials)
    assert "seconds" not in text


def test_same_seed_same_trials_and_choice(features, run_model_task):
    def trials(**tuning: Any) -> tuple[list[Any], dict[str, Any]]:
        # read at once: every run of the fixture publishes to the same run folder
        summary = _summary(run_model_task(training, _config(**tuning), {"features": features})[1])
        return [(t["params"], t["value"]) for t in summary["tuning"]["als"]["trials"]], summary[
            "candidates"
        ]

    first, first_candidates = trials()
    second, second_candidates = trials()
    assert first == second and first_candidates == second_candidates
    other, _ = trials(seed=11)
    assert other[0] == first[0]  # the configured setting
    assert [p for p, _ in other[1:]] != [p for p, _ in first[1:]]


class _Clock:
    """A clock each objective call advances by a fixed step: time without sleeping."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now


def test_the_budget_stops_new_trials_once_spent():
    clock = _Clock(step=4.0)
    space = {"x": FloatRange(type="float", low=0.0, high=1.0)}

    def objective(params: dict[str, Any]) -> float:
        clock.now += clock.step
        return -((params["x"] - 0.3) ** 2)

    result = tune(
        space,
        objective,
        direction="maximize",
        seed=0,
        n_trials=None,
        budget_seconds=10.0,
        clock=clock,
    )
    # trials start at t=0, 4, 8; at t=12 the 10 s are spent and no fourth trial starts
    assert len(result.trials) == 3 and result.stopped == "budget"
    capped = tune(
        {"n": IntRange(type="int", low=1, high=5)},
        lambda p: float(p["n"]),
        direction="minimize",
        seed=0,
        n_trials=4,
        budget_seconds=None,
        start={"n": 5},
    )
    assert len(capped.trials) == 4 and capped.stopped == "n_trials"
    assert capped.trials[0].params == {"n": 5}
    assert capped.best("minimize").value == min(t.value for t in capped.trials)


def test_a_task_budget_of_almost_nothing_still_runs_at_most_one_trial(features, run_model_task):
    config = _config(n_trials=None, timeout_seconds=1e-9)
    _, checkpoint = run_model_task(training, config, {"features": features})
    summary = _summary(checkpoint)
    record = summary["tuning"]["als"]
    assert record["stopped"] == "budget" and len(record["trials"]) <= 1
    # nothing better was found in time: the configured setting is trained and saved
    assert summary["candidates"]["als"]["params"]["n_factors"] == 4
    assert summary["candidates"]["als"]["file"] == "model_als.npz"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"tuning": {"candidates": {"als": {"space": {"factors": SPACE["n_factors"]}}}}},
            "'factors' is not a hyper-parameter of als (valid names: alpha, bm25_b",
        ),
        (
            {"tuning": {"candidates": {"als": {"space": {"seed": SPACE["n_factors"]}}}}},
            "'seed' is not a hyper-parameter of als",
        ),
        (
            {"tuning": {"candidates": {"svd": {"space": {"alpha": SPACE["regularization"]}}}}},
            "there is no candidate 'svd'",
        ),
        (
            {
                "tuning": {
                    "candidates": {
                        "als": {"space": {"n_factors": {"type": "float", "low": 1, "high": 9}}}
                    }
                }
            },
            "'n_factors' of als is a whole number",
        ),
        (
            {
                "tuning": {
                    "candidates": {
                        "als": {"space": {"n_factors": {"type": "int", "low": 0, "high": 9}}}
                    }
                }
            },
            "'n_factors' of als cannot be 0",
        ),
        (
            {
                "tuning": {
                    "candidates": {
                        "als": {
                            "space": {
                                "regularization": {
                                    "type": "float",
                                    "low": 0.0,
                                    "high": 1.0,
                                    "log": True,
                                }
                            }
                        }
                    }
                }
            },
            "a log scale needs low > 0",
        ),
        (
            {
                "tuning": {
                    "candidates": {
                        "als": {"space": {"alpha": {"type": "float", "low": 5, "high": 1}}}
                    }
                }
            },
            "low (5.0) must be below high (1.0)",
        ),
        (
            {"validation": {"method": "none"}},
            "tuning needs the validation split",
        ),
        (
            {"tuning": {"candidates": {"als": {"space": SPACE}}, "metric": "ndcg_at_5"}},
            "tuning.metric 'ndcg_at_5' is not measured on validation",
        ),
        (
            {"tuning": {"candidates": {"als": {"space": SPACE}}, "n_trials": None}},
            "no limit: set n_trials or timeout_seconds",
        ),
    ],
)
def test_bad_tuning_configs_name_the_key_and_the_fix(change, message):
    config = {**_config(), **change}
    with pytest.raises(ValidationError) as error:
        Config.model_validate(config)
    assert message in str(error.value)


def test_a_candidate_that_does_not_apply_is_skipped_without_trials(
    implicit_features, run_model_task
):
    config = {
        **_config(),
        "candidates": [{"model_type": "svd"}, {"model_type": "als"}],
        "tuning": {
            "n_trials": 2,
            "candidates": {
                "svd": {"space": {"n_factors": {"type": "int", "low": 2, "high": 8}}},
                "als": {"space": SPACE},
            },
        },
    }
    result, checkpoint = run_model_task(training, config, {"features": implicit_features})
    summary = _summary(checkpoint)
    assert "needs explicit ratings" in summary["candidates"]["svd"]["skipped"]
    assert set(summary["tuning"]) == {"als"} and len(summary["tuning"]["als"]["trials"]) == 2
    assert "svd_tuning_trials" not in result.metrics


def test_the_time_budget_is_shared_and_unused_time_passes_on():
    tuning = Config.model_validate(
        {
            **_config(),
            "candidates": [
                {"name": "a", "model_type": "als"},
                {"name": "b", "model_type": "als"},
                {"name": "c", "model_type": "als"},
            ],
            "tuning": {
                "timeout_seconds": 60,
                "candidates": {n: {"space": SPACE} for n in "abc"},
            },
        }
    ).tuning
    budget = training._Budget(tuning)
    assert budget.share(None) == 20  # a third each to start with
    budget.used(5.0)
    assert budget.share(None) == 27.5  # what a left unused is shared by b and c
    assert budget.share(10.0) == 10.0  # a candidate's own timeout caps its share
    budget.used(50.0)
    assert budget.share(None) == 5.0
