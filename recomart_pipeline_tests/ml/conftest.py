"""Synthetic latent-factor data and models fitted on it, shared by the ml tests."""

from __future__ import annotations

import pytest

from recomart_pipeline.ml.base import Recommender
from recomart_pipeline.ml.models import create_model
from recomart_pipeline_tests.ml.synthetic import SyntheticData, make_synthetic

# Small but signal-rich settings: the defaults (100 factors, lr 0.005, 20 epochs) underfit
# 300 users x 30 ratings, which is a property of SGD, not a bug worth waiting for.
SVD_PARAMS = {"n_factors": 10, "learning_rate": 0.02, "n_epochs": 40, "regularization": 0.1}
ALS_PARAMS = {"n_factors": 8, "alpha": 5.0, "regularization": 1.0, "n_iterations": 10}


@pytest.fixture(scope="session")
def data() -> SyntheticData:
    return make_synthetic(n_users=400, n_items=250, per_user=40, seed=0)


@pytest.fixture(scope="session")
def fitted(data: SyntheticData) -> dict[str, Recommender]:
    """One fitted model of each registered type (fit once per session)."""
    models = {
        "svd": create_model("collaborative_filtering_svd", SVD_PARAMS),
        "als": create_model("als", ALS_PARAMS),
        "popularity": create_model("popularity"),
    }
    for model in models.values():
        model.fit(data.train)
    return models
