"""Quality gates judged with their uncertainty: passed, failed, or inconclusive.

A gate compared on point estimates alone passes or fails on noise when few users are
evaluated (28 users: the NDCG of two identical models can differ by 20 %). Each ranking
gate is therefore judged on a 95 % bootstrap interval over the evaluated users:

- ``min``/``max``: the interval of the model's mean metric against the threshold;
- ``beat_baseline``: a *paired* interval of ``mean(model) - (1 + t) * mean(baseline)`` (lower
  is better: ``(1 - t) * mean(baseline) - mean(model)``), resampling the same users for both
  models, so what the two have in common (which users are easy) cancels out.

The gate passes when the whole interval clears the target, fails when the whole interval
misses it, and is inconclusive otherwise: noise alone neither passes nor fails it. RMSE/MAE
(per rating, not per user) and runs without resamples are judged on the point estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from recomart_pipeline.ml.evaluate import Evaluation
from recomart_pipeline.ml.metrics import bootstrap_intervals
from recomart_pipeline.ml.params import LOWER_IS_BETTER

GateOutcome = Literal["passed", "failed", "inconclusive"]


@dataclass(frozen=True)
class GateVerdict:
    """One gate's outcome, the figure it judged, and the interval when one was used."""

    outcome: GateOutcome
    detail: str
    interval: tuple[float, float] | None = None


def _outcome(low: float, high: float) -> GateOutcome:
    """Outcome of a margin interval: positive margins clear the target."""
    if low >= 0:
        return "passed"
    if high < 0:
        return "failed"
    return "inconclusive"


def _bounds(kind: str, metric: str, threshold: float, value: float, reference: float) -> str:
    if kind == "min":
        return f"{metric}={value:.4f}, required >= {threshold}"
    if kind == "max":
        return f"{metric}={value:.4f}, required <= {threshold}"
    lower = metric in LOWER_IS_BETTER
    target = reference * (1 - threshold) if lower else reference * (1 + threshold)
    relation = "<=" if lower else ">="
    return (
        f"{metric}={value:.4f} vs baseline {reference:.4f}: required {relation} {target:.4f} "
        f"({threshold:.0%} better)"
    )


def _margin(
    kind: str, metric: str, threshold: float, model: np.ndarray, baseline: np.ndarray
) -> np.ndarray:
    """How far ``model`` clears the gate (>= 0: it does): of means or, being linear in both,
    per user (whose mean is then the margin of the means)."""
    if kind == "min":
        return np.asarray(model - threshold)
    if kind == "max":
        return np.asarray(threshold - model)
    if metric in LOWER_IS_BETTER:
        return np.asarray((1 - threshold) * baseline - model)
    return np.asarray(model - (1 + threshold) * baseline)


def judge_gate(
    kind: str,
    metric: str,
    threshold: float,
    model: Evaluation,
    baseline: Evaluation,
    *,
    resamples: int,
    seed: int,
) -> GateVerdict:
    """The verdict of one gate on ``model`` (and ``baseline`` for ``beat_baseline``), both
    scored on the same users; ``resamples`` 0 judges the point estimates."""
    value = model.metrics.get(metric, math.nan)
    reference = baseline.metrics.get(metric, math.nan)
    if math.isnan(value):
        return GateVerdict("failed", f"{metric} is not available for the selected model")
    if kind == "beat_baseline" and math.isnan(reference):
        return GateVerdict("failed", f"{metric} is not available for the baseline")
    detail = _bounds(kind, metric, threshold, value, reference)
    per_user = model.values.get(metric)
    reference_values = baseline.values.get(metric) if kind == "beat_baseline" else per_user
    if resamples <= 0 or per_user is None or reference_values is None or not per_user.size:
        margin = float(_margin(kind, metric, threshold, np.array(value), np.array(reference)))
        return GateVerdict("passed" if margin >= 0 else "failed", detail)
    margins = _margin(kind, metric, threshold, per_user, reference_values)
    low, high = bootstrap_intervals(
        {metric: margins.astype(np.float64)}, resamples=resamples, seed=seed
    )[metric]
    outcome = _outcome(low, high)
    paired = "paired " if kind == "beat_baseline" else ""
    detail += (
        f"; 95 % {paired}interval of the margin over {per_user.size:,} users "
        f"[{low:+.4f}, {high:+.4f}]"
    )
    if outcome == "inconclusive":
        detail += ": the data cannot tell (evaluate more users or accept the risk)"
    return GateVerdict(outcome, detail, (low, high))
