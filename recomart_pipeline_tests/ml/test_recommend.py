"""Chunked top-K recommendation: same answer at any chunk size, seen items never shown."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recomart_pipeline.ml._topk import top_k_rows
from recomart_pipeline.ml.base import Ratings, TrainingData
from recomart_pipeline.ml.registry import create_model


@pytest.mark.parametrize("name", ["svd", "als", "popularity"])
def test_chunked_recommend_equals_unchunked(fitted, data, name):
    model = fitted[name]
    users = np.arange(model.n_users)
    whole_items, whole_scores = model.recommend(users, 10, data.train.implicit, chunk_size=10**6)
    for chunk in (1, 7, 64):
        items, scores = model.recommend(users, 10, data.train.implicit, chunk_size=chunk)
        np.testing.assert_array_equal(items, whole_items)
        np.testing.assert_allclose(scores, whole_scores, rtol=1e-6)


def test_recommend_is_the_top_of_score_items_without_seen_items(fitted, data):
    model, seen = fitted["svd"], data.train.implicit
    users = np.array([0, 5, 17])
    items, scores = model.recommend(users, 5, seen)
    dense = model.score_items(users)
    for row, user in enumerate(users):
        allowed = np.setdiff1d(np.arange(model.n_items), seen[user].indices)
        best = allowed[np.argsort(-dense[row, allowed], kind="stable")[:5]]
        np.testing.assert_array_equal(items[row], best)
        np.testing.assert_allclose(scores[row], dense[row, best], rtol=1e-6)
        assert not np.isin(items[row], seen[user].indices).any()
    assert (np.diff(scores, axis=1) <= 0).all()


def test_users_with_too_few_unseen_items_get_padding():
    train = TrainingData(2, 4, Ratings([0, 0, 0, 1], [0, 1, 2, 3], [5, 4, 3, 2]))
    model = create_model("popularity")
    model.fit(train)
    seen = train.interactions()
    items, scores = model.recommend([0, 1], 6, seen)
    assert items.shape == (2, 6)
    assert items[0].tolist() == [3, -1, -1, -1, -1, -1]
    assert sorted(items[1][:3].tolist()) == [0, 1, 2] and (items[1][3:] == -1).all()
    assert np.isnan(scores[0, 1:]).all() and np.isfinite(scores[1, :3]).all()


def test_recommend_checks_its_arguments(fitted):
    model = fitted["popularity"]
    with pytest.raises(ValueError, match="k must be >= 1"):
        model.recommend([0], 0)
    with pytest.raises(ValueError, match="exclude matrix has shape"):
        model.recommend([0], 3, sp.csr_matrix((2, 2)))
    with pytest.raises(RuntimeError, match="not fitted"):
        create_model("als").recommend([0], 3)


def test_default_chunk_respects_the_memory_budget(fitted):
    model = fitted["svd"]
    assert model.default_chunk_size() * model.n_items * 4 <= 256 * 1024 * 1024
    assert model.default_chunk_size() >= 1


def test_top_k_breaks_ties_by_item_and_skips_non_finite_scores():
    scores = np.array([[1, 3, 3, np.nan, -np.inf, 2], [0, 0, 0, 0, 0, 0]], dtype=np.float32)
    items = np.full((2, 4), -1, dtype=np.int32)
    best = np.full((2, 4), np.nan, dtype=np.float32)
    top_k_rows(scores, 4, items, best)
    assert items.tolist() == [[1, 2, 5, 0], [0, 1, 2, 3]]
    assert best[0].tolist() == [3, 3, 2, 1]
    short = np.full((1, 3), -1, dtype=np.int32)
    top_k_rows(scores[:1, 3:5].copy(), 3, short, np.full((1, 3), np.nan, np.float32))
    assert short.tolist() == [[-1, -1, -1]]
