"""EASE and item-kNN: they rank better than popularity, EASE knows its size limit, and the
item-kNN similarity is as sparse as promised."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.ml.base import Ratings, TrainingData
from recomart_pipeline.ml.evaluate import evaluate_model
from recomart_pipeline.ml.knn import ItemKNNRecommender
from recomart_pipeline.ml.models import create_model
from recomart_pipeline_tests.ml.synthetic import SyntheticData


def _ndcg(model, data: SyntheticData) -> float:
    evaluation = evaluate_model(
        model,
        test_ratings=data.test_ratings,
        test_interactions=data.test_interactions,
        exclude=data.train.implicit,
        k=10,
    )
    return evaluation.metrics["ndcg_at_10"]


@pytest.mark.parametrize(
    ("model_type", "params"),
    [
        ("ease", {}),
        ("item_knn", {"weighting": "bm25"}),
        ("item_knn", {"weighting": "cosine"}),
        ("item_knn", {"weighting": "tfidf"}),
    ],
)
def test_item_models_rank_far_better_than_popularity(data, fitted, model_type, params):
    model = create_model(model_type, params)
    model.fit(data.train)
    assert _ndcg(model, data) > 2 * _ndcg(fitted["popularity"], data)


def test_ease_is_skipped_with_its_reason_above_max_items(data):
    model = create_model("ease", {"max_items": data.train.n_items - 1})
    reason = model.skip_reason(data.train)
    assert reason is not None and "ease.max_items" in reason and "item_knn" in reason
    with pytest.raises(DataValidationError, match="max_items"):
        model.fit(data.train)
    assert create_model("ease", {"max_items": data.train.n_items}).skip_reason(data.train) is None


def test_ease_scores_are_the_closed_form_solution():
    """B = I - P·diag(1/diag(P)) with P = (XᵀX + λI)⁻¹, computed independently here."""
    rng = np.random.default_rng(1)
    dense = (rng.random((30, 12)) < 0.3).astype(np.float32)
    users, items = np.nonzero(dense)
    train = TrainingData(
        30, 12, Ratings(users, items, np.ones(users.size)), sp.csr_matrix(dense * 3.0)
    )
    model = create_model("ease", {"regularization": 2.0})
    model.fit(train)
    inverse = np.linalg.inv(dense.T.astype(np.float64) @ dense + 2.0 * np.eye(12))
    expected = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(expected, 0.0)
    assert np.allclose(model.score_items(np.arange(30)), dense @ expected, atol=1e-5)
    pairs = (np.array([0, 5, 7]), np.array([3, 3, 11]))
    assert np.allclose(model.predict(*pairs), (dense @ expected)[pairs], atol=1e-5)


@pytest.mark.parametrize("weighting", ["cosine", "bm25", "tfidf"])
def test_item_knn_keeps_at_most_k_positive_neighbours_per_item(data, weighting):
    model = ItemKNNRecommender({"k": 7, "weighting": weighting})
    model.fit(data.train)
    arrays = model.to_arrays()
    per_item = np.diff(arrays["similarity_indptr"])
    assert per_item.max() == 7 and (arrays["similarity_data"] > 0).all()
    similarity = sp.csr_matrix(
        (arrays["similarity_data"], arrays["similarity_indices"], arrays["similarity_indptr"]),
        shape=(model.n_items, model.n_items),
    )
    assert similarity.diagonal().sum() == 0  # an item is never its own neighbour
    users = np.arange(20)
    rows = data.train.interactions()[users].astype(bool).astype(np.float32)
    assert np.allclose(model.score_items(users), (rows @ similarity).toarray(), atol=1e-5)
