"""Score one fitted model on held-out data: rating error plus top-K ranking quality.

Shared by the evaluation task and the benchmark so both report exactly the same numbers.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recomart_pipeline.ml.base import Ratings, Recommender
from recomart_pipeline.ml.metrics import mae, ranking_metrics, rmse


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
) -> dict[str, float]:
    """RMSE/MAE on ``test_ratings`` (NaN for models that do not predict ratings) and the
    ranking metrics at ``k`` for ``users`` (default: every user with held-out interactions),
    recommending only items not stored in ``exclude`` (the training interactions)."""
    if model.predicts_ratings and test_ratings is not None and len(test_ratings):
        predicted = model.predict(test_ratings.users, test_ratings.items)
        errors = {
            "rmse": rmse(test_ratings.values, predicted),
            "mae": mae(test_ratings.values, predicted),
        }
    else:
        errors = {"rmse": float("nan"), "mae": float("nan")}
    if users is None:
        users = evaluation_users(test_interactions)
    recommended, _ = model.recommend(users, k, exclude, chunk_size=chunk_size)
    relevant = sp.csr_matrix(test_interactions)[users]
    return {**errors, **ranking_metrics(recommended, relevant, k, model.n_items)}
