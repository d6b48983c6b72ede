"""Gates judged on intervals: noise alone neither passes nor fails them."""

from __future__ import annotations

import numpy as np

from recomart_pipeline.ml.evaluate import Evaluation
from recomart_pipeline.ml.gates import judge_gate

METRIC = "ndcg_at_10"


def _scored(values: np.ndarray) -> Evaluation:
    return Evaluation({METRIC: float(values.mean())}, values={METRIC: values})


def _judge(kind: str, threshold: float, model: np.ndarray, baseline: np.ndarray, **kw):
    options = {"resamples": 400, "seed": 7, **kw}
    return judge_gate(kind, METRIC, threshold, _scored(model), _scored(baseline), **options)


def test_two_noisy_samples_of_the_same_model_are_inconclusive_not_failed():
    rng = np.random.default_rng(0)
    baseline = rng.uniform(0, 1, 28)  # 28 evaluated users, as in the time split
    model = rng.uniform(0, 1, 28)
    verdict = _judge("beat_baseline", 0.10, model, baseline)
    point = judge_gate(
        "beat_baseline", METRIC, 0.10, _scored(model), _scored(baseline), resamples=0, seed=7
    )
    assert verdict.outcome == "inconclusive"
    assert point.outcome in ("passed", "failed")  # the point estimate decides on noise
    low, high = verdict.interval
    assert low < 0 < high
    assert "cannot tell" in verdict.detail and "28 users" in verdict.detail


def test_a_clear_improvement_passes_and_a_clear_loss_fails():
    rng = np.random.default_rng(1)
    baseline = rng.uniform(0.1, 0.3, 500)
    assert _judge("beat_baseline", 0.10, baseline * 1.5, baseline).outcome == "passed"
    assert _judge("beat_baseline", 0.10, baseline * 0.8, baseline).outcome == "failed"


def test_the_comparison_is_paired_over_the_same_users():
    # every user gains 0.02 over a baseline that varies widely between users: unpaired
    # intervals of the two means would overlap, the paired margin is clearly positive
    rng = np.random.default_rng(2)
    baseline = rng.uniform(0, 0.9, 60)
    model = baseline + 0.02 + rng.normal(0, 0.005, 60)
    verdict = _judge("beat_baseline", 0.0, model, baseline)
    assert verdict.outcome == "passed"
    low, high = verdict.interval
    assert 0 < low < 0.02 < high < 0.04
    # the model's own interval is far wider than its gain over the baseline
    alone = _judge("min", float(baseline.mean()), model, baseline)
    assert alone.outcome == "inconclusive"


def test_min_and_max_gates_use_the_interval_of_the_model():
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 0.2, 40)  # mean about 0.1, wide relative spread
    mean = float(values.mean())
    assert _judge("min", mean + 0.001, values, values).outcome == "inconclusive"
    assert _judge("min", mean - 0.05, values, values).outcome == "passed"
    assert _judge("max", mean - 0.05, values, values).outcome == "failed"


def test_without_resamples_or_per_user_values_the_point_estimate_decides():
    model = Evaluation({"rmse": 0.85})
    baseline = Evaluation({"rmse": 1.0})
    verdict = judge_gate("beat_baseline", "rmse", 0.10, model, baseline, resamples=200, seed=0)
    assert verdict.outcome == "passed" and verdict.interval is None  # 0.85 <= 0.90
    verdict = judge_gate("beat_baseline", "rmse", 0.20, model, baseline, resamples=200, seed=0)
    assert verdict.outcome == "failed"


def test_a_missing_metric_fails_with_its_reason():
    model = Evaluation({"rmse": float("nan")})
    verdict = judge_gate("max", "rmse", 1.0, model, model, resamples=0, seed=0)
    assert verdict.outcome == "failed" and "not available" in verdict.detail
