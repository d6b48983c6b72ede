"""EASE and item-kNN: they rank better than popularity, EASE knows its size limit, and the
item-kNN similarity is as sparse as promised and equal to the top k of the full product."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.ml import knn
from recomart_pipeline.ml.base import Ratings, TrainingData
from recomart_pipeline.ml.evaluate import evaluate_model
from recomart_pipeline.ml.knn import ItemKNNRecommender
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.params import ItemKNNParams
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


def _reference_top_k(weighted: sp.csr_matrix, k: int) -> dict[tuple[int, int], float]:
    """The definition: the full product (scipy's, in float64, cast to float32 as the model
    stores it), an item's own entry removed, its k largest positive entries by (value
    descending, item ascending)."""
    full = np.asarray((weighted @ weighted.T).toarray(), np.float32)
    kept: dict[tuple[int, int], float] = {}
    for item, row in enumerate(full):
        others = [j for j in range(row.size) if j != item and row[j] > 0]
        for j in sorted(others, key=lambda j: (-row[j], j))[:k]:
            kept[item, j] = float(row[j])
    return kept


@pytest.mark.parametrize("weighting", ["cosine", "bm25", "tfidf"])
@pytest.mark.parametrize("k", [1, 4, 100])
def test_item_knn_similarities_are_the_top_k_of_the_full_product_ties_to_the_lower_item(
    weighting, k, monkeypatch
):
    # binary data on few users: many items share the same co-occurrence counts (ties)
    rng = np.random.default_rng(5)
    dense = (rng.random((25, 40)) < 0.2).astype(np.float32)
    dense[:, 39] = 0.0  # an item nobody has: no neighbours
    weighted = knn.weighted_items(sp.csr_matrix(dense), ItemKNNParams(weighting=weighting))
    expected = _reference_top_k(weighted, k)
    monkeypatch.setattr(knn, "_ITEMS_PER_TASK", 3)  # many tasks on the worker threads
    similarity = knn.top_k_similarities(weighted, k).tocoo()
    got = {
        (int(i), int(j)): float(v)
        for i, j, v in zip(similarity.row, similarity.col, similarity.data, strict=True)
    }
    assert got == expected
    assert len({v for v in expected.values()}) < len(expected)  # ties were there to break
