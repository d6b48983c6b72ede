"""Score one fitted model on held-out data: rating error plus top-K ranking quality.

Shared by the evaluation task and the benchmark so both report exactly the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recomart_pipeline.ml.base import History, Ratings, Recommender
from recomart_pipeline.ml.metrics import (
    bootstrap_intervals,
    mae,
    ranking_metrics,
    ranking_values,
    rmse,
)


@dataclass(frozen=True)
class Evaluation:
    """A model's metrics and, for each ranking metric, a bootstrap interval over users and
    the per-user values (in the order of the users scored) that paired comparisons need."""

    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)


def evaluation_users(
    test_interactions: sp.csr_matrix, max_users: int | None = None, seed: int = 0
) -> np.ndarray:
    """Users with at least one held-out interaction, optionally a seeded sample of them."""
    users = np.flatnonzero(np.diff(sp.csr_matrix(test_interactions).indptr) > 0)
    if max_users is not None and users.size > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    return users.astype(np.int32)


def evaluate_model(
    model: Recommender,
    *,
    test_ratings: Ratings | None,
    test_interactions: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    k: int,
    users: np.ndarray | None = None,
    chunk_size: int | None = None,
    resamples: int = 0,
    seed: int = 0,
    history: History | None = None,
) -> Evaluation:
    """RMSE/MAE on ``test_ratings`` (NaN for models that do not predict ratings) and the
    ranking metrics at ``k`` for ``users`` (default: every user with held-out interactions),
    recommending only items not stored in ``exclude`` (the training interactions).

    With ``resamples`` > 0, each ranking metric also gets a 95 % bootstrap interval over the
    users (seeded: two models scored with the same seed see the same resamples).

    With a ``history`` (the ``user_holdout`` protocol), the test users were never trained on:
    ``test_interactions``' rows and ``users`` are rows of the history, each user is ranked
    from their history (``Recommender.recommend_history``, which skips the history's items)
    and ``exclude`` must be None."""
    if users is None:
        users = evaluation_users(test_interactions)
    if history is not None and exclude is not None:
        raise ValueError("with a history, the history's items are excluded: pass exclude=None")
    recommended = recommend_for(model, users, k, exclude, history=history, chunk_size=chunk_size)
    relevant = sp.csr_matrix(test_interactions)[users]
    metrics = {
        **rating_errors(model, test_ratings),
        **ranking_metrics(recommended, relevant, k, model.n_items),
    }
    if resamples <= 0:
        return Evaluation(metrics)
    values = ranking_values(recommended, relevant, k)
    intervals = bootstrap_intervals(values, resamples=resamples, seed=seed)
    return Evaluation(metrics, intervals, values)


def rating_errors(model: Recommender, test_ratings: Ratings | None) -> dict[str, float]:
    """RMSE and MAE of ``model``'s predictions of ``test_ratings`` (NaN for a model that
    predicts no ratings, or no ratings to predict)."""
    if model.predicts_ratings and test_ratings is not None and len(test_ratings):
        predicted = model.predict(test_ratings.users, test_ratings.items)
        return {
            "rmse": rmse(test_ratings.values, predicted),
            "mae": mae(test_ratings.values, predicted),
        }
    return {"rmse": float("nan"), "mae": float("nan")}


def recommend_for(
    model: Recommender,
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None,
    *,
    history: History | None = None,
    chunk_size: int | None = None,
) -> np.ndarray:
    """``model``'s top-``k`` items for ``users`` (history rows when ``history`` is given),
    row for row. A user's list does not depend on which other users are ranked with it."""
    if history is None:
        recommended, _ = model.recommend(users, k, exclude, chunk_size=chunk_size)
    else:
        recommended, _ = model.recommend_history(history, k, users, chunk_size=chunk_size)
    return recommended
