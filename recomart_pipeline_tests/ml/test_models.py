"""Models learn the planted signal, are deterministic, and SVD follows Surprise's updates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recomart_pipeline.contract.errors import DataValidationError, TaskError
from recomart_pipeline.ml.base import Ratings, TrainingData
from recomart_pipeline.ml.evaluate import evaluate_model
from recomart_pipeline.ml.models import MODEL_TYPES, create_model, get_model_class
from recomart_pipeline.ml.svd import SVDRecommender
from recomart_pipeline_tests.ml.conftest import ALS_PARAMS, SVD_PARAMS
from recomart_pipeline_tests.ml.synthetic import SyntheticData


def _scores(model, data: SyntheticData) -> dict[str, float]:
    return evaluate_model(
        model,
        test_ratings=data.test_ratings,
        test_interactions=data.test_interactions,
        exclude=data.train.implicit,
        k=10,
    ).metrics


def test_svd_beats_popularity_on_rmse_and_ndcg(fitted, data):
    svd, popularity = _scores(fitted["svd"], data), _scores(fitted["popularity"], data)
    assert svd["rmse"] < 0.9 * popularity["rmse"]
    assert svd["mae"] < 0.9 * popularity["mae"]
    assert svd["ndcg_at_10"] > 1.3 * popularity["ndcg_at_10"]


def test_als_beats_popularity_on_ranking_and_reports_no_rmse(fitted, data):
    als, popularity = _scores(fitted["als"], data), _scores(fitted["popularity"], data)
    assert als["ndcg_at_10"] > 2 * popularity["ndcg_at_10"]
    assert als["recall_at_10"] > 2 * popularity["recall_at_10"]
    assert np.isnan(als["rmse"]) and np.isnan(als["mae"])


def test_als_objective_decreases(data):
    report = create_model("als", ALS_PARAMS).fit(data.train)
    losses = [record["train_loss"] for record in report.history]
    assert len(losses) == ALS_PARAMS["n_iterations"]
    assert losses[-1] < losses[0]
    assert all(b <= a * 1.001 for a, b in itertools.pairwise(losses))


@pytest.mark.parametrize(("model_type", "params"), [("svd", SVD_PARAMS), ("als", ALS_PARAMS)])
def test_same_seed_same_model_other_seed_differs(data, model_type, params):
    first, second, other = (
        create_model(model_type, {**params, "seed": seed}) for seed in (7, 7, 8)
    )
    for model in (first, second, other):
        model.fit(data.train)
    for name, array in first.to_arrays().items():
        np.testing.assert_array_equal(array, second.to_arrays()[name], err_msg=name)
    assert not np.array_equal(first.to_arrays()["user_factors"], other.to_arrays()["user_factors"])


def test_early_stopping_stops_and_keeps_the_best_epoch(data):
    # A large step without regularisation overfits quickly, so validation RMSE turns up.
    params = {
        "n_factors": 30,
        "learning_rate": 0.05,
        "regularization": 0.0,
        "n_epochs": 200,
        "validation_fraction": 0.2,
        "patience": 2,
    }
    model = SVDRecommender(params)
    report = model.fit(data.train)
    assert report.stopped_early
    assert len(report.history) == report.best_epoch + params["patience"] < 200
    val = [record["val_rmse"] for record in report.history]
    assert min(val) == val[report.best_epoch - 1]
    assert report.n_validation == round(len(data.train.ratings) * 0.2)
    # the kept parameters are the best epoch's: its validation error beats the last epoch's
    assert val[report.best_epoch - 1] < val[-1]


def test_svd_without_validation_runs_all_epochs(data):
    report = SVDRecommender({**SVD_PARAMS, "n_epochs": 5}).fit(data.train)
    assert [r["epoch"] for r in report.history] == [1, 2, 3, 4, 5]
    assert all(r["val_rmse"] is None for r in report.history)
    assert report.history[-1]["train_rmse"] < report.history[0]["train_rmse"]


def _surprise_reference(ratings: Ratings, n_users, n_items, k, epochs, lr, reg, seed):
    """Surprise's SVD.sgd loop, transcribed, visiting ratings in our model's seeded order."""
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(ratings))  # validation split draw (fraction 0: all kept)
    order = shuffled[np.argsort(ratings.users[shuffled], kind="stable")]
    by_user = {u: [idx for idx in order if ratings.users[idx] == u] for u in range(n_users)}
    p = rng.normal(0, 0.1, (n_users, k)).astype(np.float32).astype(np.float64)
    q = rng.normal(0, 0.1, (n_items, k)).astype(np.float32).astype(np.float64)
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    mu = float(np.float32(ratings.values[order].mean()))
    for _ in range(epochs):
        for user in rng.permutation(n_users):
            for idx in by_user[user]:
                u, i, r = ratings.users[idx], ratings.items[idx], float(ratings.values[idx])
                err = r - (mu + bu[u] + bi[i] + p[u] @ q[i])
                bu[u] += lr * (err - reg * bu[u])
                bi[i] += lr * (err - reg * bi[i])
                pu = p[u].copy()
                p[u] += lr * (err * q[i] - reg * p[u])
                q[i] += lr * (err * pu - reg * q[i])
    return bu, bi, p, q


def test_svd_updates_match_surprise_sgd_loop():
    rng = np.random.default_rng(3)
    n_users, n_items, n = 12, 9, 80
    ratings = Ratings(
        rng.integers(0, n_users, n), rng.integers(0, n_items, n), rng.integers(1, 6, n)
    )
    train = TrainingData(n_users, n_items, ratings)
    params = {"n_factors": 4, "n_epochs": 3, "learning_rate": 0.01, "regularization": 0.05}
    model = SVDRecommender({**params, "seed": 5})
    model.fit(train)
    bu, bi, p, q = _surprise_reference(ratings, n_users, n_items, 4, 3, 0.01, 0.05, seed=5)
    state = model.to_arrays()
    np.testing.assert_allclose(state["user_bias"], bu, atol=1e-5)
    np.testing.assert_allclose(state["item_bias"], bi, atol=1e-5)
    seen_users = np.bincount(ratings.users, minlength=n_users) > 0
    seen_items = np.bincount(ratings.items, minlength=n_items) > 0
    np.testing.assert_allclose(state["user_factors"][seen_users], p[seen_users], atol=1e-5)
    np.testing.assert_allclose(state["item_factors"][seen_items], q[seen_items], atol=1e-5)


def test_unrated_users_get_the_baseline_estimate(data):
    train = data.train
    keep = train.ratings.users != 0  # user 0 keeps implicit rows but no ratings
    model = SVDRecommender(SVD_PARAMS)
    model.fit(TrainingData(train.n_users, train.n_items, train.ratings.subset(keep)))
    state = model.to_arrays()
    assert not state["user_factors"][0].any()
    expected = np.clip(state["global_mean"] + state["item_bias"][:5], 1, 5)
    np.testing.assert_allclose(model.predict([0] * 5, range(5)), expected, rtol=1e-6)


def test_popularity_counts_and_damped_item_means():
    ratings = Ratings([0, 1, 2, 0], [0, 0, 0, 1], [5.0, 4.0, 3.0, 1.0])
    train = TrainingData(3, 3, ratings)
    model = create_model("popularity", {"damping": 1.0})
    model.fit(train)
    mu = 13.0 / 4
    expected_bias_0 = ((5 - mu) + (4 - mu) + (3 - mu)) / (3 + 1)
    expected = [mu + expected_bias_0, mu + (1 - mu) / 2, mu]
    np.testing.assert_allclose(model.predict([0, 0, 0], [0, 1, 2]), expected, rtol=1e-6)
    np.testing.assert_array_equal(model.score_items([1])[0], [3, 1, 0])
    items, _ = model.recommend([2], 2)
    assert items.tolist() == [[0, 1]]


def test_predict_rejects_unknown_indices(fitted):
    with pytest.raises(IndexError, match="user index out of range"):
        fitted["svd"].predict([10_000], [0])
    with pytest.raises(IndexError, match="item index out of range"):
        fitted["als"].predict([0], [-1])


def test_svd_needs_ratings_and_divergence_is_reported(data):
    empty = TrainingData(5, 5, Ratings([], [], []))
    with pytest.raises(DataValidationError, match="needs explicit ratings"):
        SVDRecommender().fit(empty)
    with pytest.raises(TaskError, match="diverged"):
        SVDRecommender({"learning_rate": 50.0, "n_epochs": 5}).fit(data.train)


def test_registry_knows_every_type_and_suggests_close_names():
    assert set(MODEL_TYPES) == {
        "collaborative_filtering_svd",
        "als",
        "popularity",
        "baseline_bias",
        "ease",
        "item_knn",
    }
    assert get_model_class("svd") is SVDRecommender
    with pytest.raises(ValueError, match="did you mean 'popularity'"):
        get_model_class("populrity")
    with pytest.raises(ValueError, match="n_factors"):
        create_model("als", {"n_factors": 0})
