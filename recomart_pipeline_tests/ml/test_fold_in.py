"""Scoring users a model was never trained on, from their history ("strong generalization").

The contract suite checks every model type answers from a history; these tests check the
factor models' fold-in is the closed form it claims to be (against an independent dense
solve), and that on users held out of training whole, fold-in ranks far above popularity.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.ml.base import History, Ratings, TrainingData
from recomart_pipeline.ml.evaluate import evaluate_model
from recomart_pipeline.ml.models import create_model
from recomart_pipeline_tests.ml.conftest import ALS_PARAMS, SVD_PARAMS
from recomart_pipeline_tests.ml.synthetic import SyntheticData

HELD_OUT = 100  # the last users of the synthetic world are held out of training whole


def _user_holdout(data: SyntheticData) -> tuple[TrainingData, History, sp.csr_matrix]:
    """Train on the first users only; the held-out users' train rows are their fold-in
    histories and their test rows the targets (rows of the history)."""
    n_train = data.train.n_users - HELD_OUT
    implicit = data.train.interactions()
    r = data.train.ratings
    kept = r.users < n_train
    train = TrainingData(
        n_train, data.train.n_items, r.subset(np.flatnonzero(kept)), implicit[:n_train]
    )
    held = np.flatnonzero(~kept)
    ratings = Ratings(r.users[held] - n_train, r.items[held], r.values[held])
    history = History(implicit[n_train:], ratings)
    return train, history, sp.csr_matrix(data.test_interactions[n_train:])


def test_als_fold_in_of_a_training_user_recovers_the_learned_factor(fitted, data):
    """ALS's user step is the same closed form: on a converged model, the factor folded in
    from a user's own history is (nearly) the one training learned, and ranks the same."""
    model = fitted["als"]
    users = np.arange(data.train.n_users)
    history = History(data.train.interactions())
    folded = model.fold_in(history, users)
    learned = model._state["user_factors"]
    cosine = np.sum(folded * learned, axis=1) / (
        np.linalg.norm(folded, axis=1) * np.linalg.norm(learned, axis=1)
    )
    assert np.median(cosine) > 0.99
    known, _ = model.recommend(users, 10, exclude=history.interactions)
    cold, _ = model.recommend_history(history, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(known, cold, strict=True)])
    assert overlap > 0.9


def test_als_fold_in_is_the_confidence_weighted_least_squares_solution(fitted, data):
    model = fitted["als"]
    y = model._state["item_factors"].astype(np.float64)
    history = History(data.train.interactions())
    row = history.interactions[7]
    confidence = 1.0 + ALS_PARAMS["alpha"] * row.data
    # dense: (Yᵀ C Y + λI) x = Yᵀ C p, with C = 1 off the history and p = 1 on it
    c = np.ones(y.shape[0])
    c[row.indices] = confidence
    p = np.zeros(y.shape[0])
    p[row.indices] = 1.0
    a = y.T @ (c[:, None] * y) + ALS_PARAMS["regularization"] * np.eye(y.shape[1])
    expected = np.linalg.solve(a, y.T @ (c * p))
    np.testing.assert_allclose(model.fold_in(history, np.array([7]))[0], expected, rtol=1e-4)


def test_svd_fold_in_is_the_regularised_least_squares_solution(fitted, data):
    """SVD folds in a bias and a factor from the history's ratings, penalised as training
    penalises a user (once per rating); a row without ratings gets the item-bias ranking."""
    model = fitted["svd"]
    s = model._state
    r = data.train.ratings
    history = History(data.train.interactions(), r)
    mine = r.users == 3
    items, values = r.items[mine], r.values[mine].astype(np.float64)
    design = np.hstack([np.ones((items.size, 1)), s["item_factors"][items].astype(np.float64)])
    target = values - float(s["global_mean"]) - s["item_bias"][items]
    penalty = SVD_PARAMS["regularization"] * items.size * np.eye(design.shape[1])
    expected = np.linalg.solve(design.T @ design + penalty, design.T @ target)
    bias, factor = model.fold_in(history, np.array([3]))
    np.testing.assert_allclose(np.r_[bias, factor[0]], expected, rtol=1e-3, atol=1e-5)

    unrated = History(
        history.interactions, Ratings(r.users[~mine], r.items[~mine], r.values[~mine])
    )
    scores = model.score_history(unrated, [3])[0]
    np.testing.assert_allclose(scores, s["global_mean"] + s["item_bias"], rtol=1e-6)


@pytest.mark.parametrize(
    "model_type, params",
    [
        ("ease", {}),
        ("item_knn", {}),
        ("als", ALS_PARAMS),
        ("collaborative_filtering_svd", SVD_PARAMS),
    ],
)
def test_users_held_out_of_training_are_ranked_far_above_popularity(data, model_type, params):
    train, history, targets = _user_holdout(data)
    popularity = create_model("popularity")
    popularity.fit(train)
    model = create_model(model_type, params)
    model.fit(train)
    scored = {
        name: evaluate_model(
            m, test_ratings=None, test_interactions=targets, exclude=None, k=10, history=history
        ).metrics["ndcg_at_10"]
        for name, m in (("model", model), ("popularity", popularity))
    }
    assert scored["model"] > 1.3 * scored["popularity"], scored


def test_evaluation_with_a_history_takes_no_training_exclusions(fitted, data):
    history = History(data.train.interactions())
    with pytest.raises(ValueError, match="exclude=None"):
        evaluate_model(
            fitted["popularity"],
            test_ratings=None,
            test_interactions=data.test_interactions,
            exclude=data.train.interactions(),
            k=10,
            history=history,
        )


def test_a_history_that_does_not_fit_the_model_is_refused(fitted, data):
    model = fitted["als"]
    with pytest.raises(ValueError, match="item columns"):
        model.recommend_history(History(sp.csr_matrix((2, 5), dtype=np.float32)), 10)
    with pytest.raises(DataValidationError, match="non-negative"):
        History(sp.csr_matrix(np.array([[1.0, -1.0]])))
    with pytest.raises(DataValidationError, match="history rating user indices"):
        History(sp.csr_matrix((2, 3), dtype=np.float32), Ratings([5], [0], [4.0]))
    with pytest.raises(IndexError, match="history row"):
        model.recommend_history(History(data.train.interactions()), 10, [10**6])
