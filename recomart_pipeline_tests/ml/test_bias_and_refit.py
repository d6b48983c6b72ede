"""The bias-only baseline, SVD's refit after early stopping, and which models apply to which data."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recomart_pipeline.ml.base import Ratings, TrainingData
from recomart_pipeline.ml.metrics import rmse
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.svd import SVDRecommender
from recomart_pipeline.tasks.specs.training import Config
from recomart_pipeline_tests.ml.synthetic import SyntheticData, make_synthetic


def _test_rmse(model, data: SyntheticData) -> float:
    test = data.test_ratings
    return rmse(test.values, model.predict(test.users, test.items))


def test_bias_model_is_the_closed_form_on_a_tiny_example():
    # two users, two items; with no regularisation and enough sweeps the biases explain the
    # additive ratings exactly
    ratings = Ratings([0, 0, 1, 1], [0, 1, 0, 1], [5.0, 3.0, 4.0, 2.0])
    model = create_model(
        "bias", {"n_iterations": 50, "user_regularization": 0, "item_regularization": 0}
    )
    model.fit(TrainingData(2, 3, ratings))  # item 2 has no rating: bias 0, no NaN
    np.testing.assert_allclose(model.predict([0, 0, 1, 1], [0, 1, 0, 1]), [5, 3, 4, 2], atol=1e-4)
    state = model.to_arrays()
    assert state["item_bias"][2] == 0 and np.isfinite(state["user_bias"]).all()


def test_bias_regularisation_shrinks_towards_the_global_mean(data):
    strong = create_model("bias", {"user_regularization": 1e9, "item_regularization": 1e9})
    strong.fit(data.train)
    users = data.test_ratings.users
    mean = data.train.ratings.values.mean()
    np.testing.assert_allclose(strong.predict(users, data.test_ratings.items), mean, atol=1e-3)


def test_bias_model_beats_popularity_on_rmse(fitted, data):
    bias = create_model("bias")
    report = bias.fit(data.train)
    assert [r["epoch"] for r in report.history] == list(range(1, 11))
    # popularity's rating estimate is mean + item bias; adding user biases must help
    assert _test_rmse(bias, data) < _test_rmse(fitted["popularity"], data)


def test_models_that_need_ratings_are_not_applicable_without_them(data):
    implicit_only = TrainingData(
        data.train.n_users,
        data.train.n_items,
        Ratings(np.empty(0), np.empty(0), np.empty(0)),
        data.train.implicit,
    )
    for model_type in ("svd", "bias"):
        reason = create_model(model_type).skip_reason(implicit_only)
        assert reason is not None and "needs explicit ratings" in reason
        assert create_model(model_type).skip_reason(data.train) is None
    for model_type in ("als", "popularity"):
        assert create_model(model_type).skip_reason(implicit_only) is None
    nothing = sp.csr_matrix((data.train.n_users, data.train.n_items), dtype=np.float32)
    empty = TrainingData(data.train.n_users, data.train.n_items, implicit_only.ratings, nothing)
    for model_type in ("als", "popularity"):
        reason = create_model(model_type).skip_reason(empty)
        assert reason is not None and "needs interactions" in reason


EARLY = {
    "n_factors": 20,
    "learning_rate": 0.03,
    "regularization": 0.0,
    "n_epochs": 100,
    "validation_fraction": 0.2,
    "patience": 2,
    "seed": 5,
}


def test_refit_is_a_fit_on_every_rating_for_the_best_epochs(data):
    model = SVDRecommender(EARLY)
    report = model.fit(data.train)
    assert report.stopped_early and report.best_epoch is not None
    refit = report.refit
    assert refit is not None and set(refit) == {"epochs", "n_train", "train_rmse"}
    assert refit["epochs"] == report.best_epoch and refit["n_train"] == len(data.train.ratings)
    assert 0 < refit["train_rmse"] < report.history[0]["train_rmse"]
    # the history stays the validation run's (it picked the epoch count)
    assert len(report.history) == report.best_epoch + EARLY["patience"]
    reference = SVDRecommender({**EARLY, "validation_fraction": 0.0, "n_epochs": report.best_epoch})
    reference.fit(data.train)
    for name, array in reference.to_arrays().items():
        np.testing.assert_array_equal(model.to_arrays()[name], array, err_msg=name)


def test_refit_can_be_turned_off_and_then_keeps_the_best_epoch(data):
    kept = SVDRecommender({**EARLY, "refit_after_early_stopping": False})
    report = kept.fit(data.train)
    assert report.refit is None
    refitted = SVDRecommender(EARLY)
    refitted.fit(data.train)
    assert not np.array_equal(
        kept.to_arrays()["item_factors"], refitted.to_arrays()["item_factors"]
    )
    # the best epoch's factors, not the last one's: the same split fitted for exactly that
    # many epochs (no early stopping) ends where the kept model is
    assert report.best_epoch is not None and len(report.history) > report.best_epoch
    exact = SVDRecommender({**EARLY, "patience": 0, "n_epochs": report.best_epoch})
    exact.fit(data.train)
    for name, array in exact.to_arrays().items():
        np.testing.assert_array_equal(kept.to_arrays()[name], array, err_msg=name)


def test_no_refit_without_early_stopping(data):
    report = SVDRecommender({**EARLY, "patience": 0, "n_epochs": 3}).fit(data.train)
    assert report.refit is None and report.n_validation > 0
    report = SVDRecommender({**EARLY, "validation_fraction": 0.0, "n_epochs": 3}).fit(data.train)
    assert report.refit is None


# A noisy explicit data set (ratings = latent model + N(0, 1) noise, rounded and clipped to 1-5)
# on which early stopping triggers with the training task's defaults. Without the refit, default
# SVD's test RMSE is above the bias-only model's (0.9229 vs 0.9226); with it, below (0.9190).
NOISY = {"n_users": 300, "n_items": 200, "per_user": 30, "noise": 1.0, "seed": 1}


def test_default_svd_is_no_worse_than_the_bias_baseline_on_noisy_ratings():
    noisy = make_synthetic(**NOISY)
    candidates = {c.name: c for c in Config().resolved_candidates()}
    assert list(candidates) == ["svd", "bias", "popularity"]  # the defaults, as training runs
    svd = create_model("svd", candidates["svd"].params)
    report = svd.fit(noisy.train)
    assert report.stopped_early and report.refit is not None  # the case the refit is for
    bias = create_model("bias", candidates["bias"].params)
    bias.fit(noisy.train)
    assert _test_rmse(svd, noisy) <= _test_rmse(bias, noisy)

    no_refit = create_model(
        "svd", candidates["svd"].params.model_copy(update={"refit_after_early_stopping": False})
    )
    no_refit.fit(noisy.train)
    assert _test_rmse(svd, noisy) < _test_rmse(no_refit, noisy)
