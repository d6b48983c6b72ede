"""The bias model ranks by walking one list of item biases (``top_k_shifted``) instead of
scoring every user densely: its answers must be the dense scores' ranking, bit for bit,
including where different biases round to the same float32 score."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recomart_pipeline.ml.base import History, Recommender
from recomart_pipeline.ml.bias import BiasRecommender
from recomart_pipeline.ml.models import create_model


def _bias_model(n_users: int, n_items: int, seed: int) -> BiasRecommender:
    """A bias model with hand-set state: biases that tie exactly, and biases a few ulps
    apart that the user offset's addition rounds onto the same score."""
    rng = np.random.default_rng(seed)
    item_bias = np.round(rng.normal(0.0, 0.5, n_items), 2).astype(np.float32)  # exact ties
    close = rng.choice(n_items, n_items // 4, replace=False)
    item_bias[close] = np.float32(1.5) + rng.integers(0, 6, close.size) * np.float32(1e-7)
    user_bias = rng.normal(0.0, 0.8, n_users).astype(np.float32)
    user_bias[::5] = np.float32(40.0)  # a large offset: coarse float32 steps, many collisions
    model = create_model("bias", {})
    assert isinstance(model, BiasRecommender)
    arrays = {
        "user_bias": user_bias,
        "item_bias": item_bias,
        "global_mean": np.asarray(3.6, np.float32),
        "rating_min": np.asarray(1.0, np.float32),
        "rating_max": np.asarray(5.0, np.float32),
    }
    return type(model).from_arrays({}, n_users, n_items, arrays)


def _dense(model: Recommender, users, k, seen, history: History | None = None):
    """The generic path: dense scores of every item, ranked by ``top_k_rows``."""
    from recomart_pipeline.ml.base import SeenItems

    items = np.full((users.size, k), -1, np.int32)
    scores = np.full((users.size, k), np.nan, np.float32)
    if history is None:
        score = model._score_items
        arrays = SeenItems.of(seen, model.n_users)
    else:
        score = lambda rows: model._score_history(history, rows)  # noqa: E731
        arrays = SeenItems.of(history.interactions, history.n_rows)
    Recommender._recommend_into(model, users, k, arrays, items, scores, 7, score)
    return items, scores


@pytest.mark.parametrize("k", [1, 5, 40, 300])
def test_the_walk_equals_dense_ranking_with_ties_and_rounding_collisions(k):
    model = _bias_model(n_users=60, n_items=250, seed=k)
    rng = np.random.default_rng(k)
    seen = sp.random(60, 250, density=0.2, format="csr", random_state=k, dtype=np.float32)
    seen.data[rng.random(seen.nnz) < 0.2] = 0.0  # stored zeros are not interactions
    users = rng.permutation(60)
    walked = model.recommend(users, k, seen)
    dense = _dense(model, users, min(k, 250), seen)
    np.testing.assert_array_equal(walked[0][:, : dense[0].shape[1]], dense[0])
    np.testing.assert_array_equal(walked[1][:, : dense[1].shape[1]], dense[1])
    if k == 1:
        return
    # the case the walk exists for happened: equal scores from different biases
    filled = dense[0] >= 0
    bias = np.where(filled, model._state["item_bias"][dense[0]], np.nan)
    tie = dense[1][:, 1:] == dense[1][:, :-1]
    assert (tie & (bias[:, 1:] != bias[:, :-1])).any()


def test_history_rows_walk_the_same_list_as_their_dense_scores():
    model = _bias_model(n_users=30, n_items=120, seed=9)
    history = History(sp.random(12, 120, density=0.3, format="csr", random_state=2))
    walked = model.recommend_history(history, 15)
    dense = _dense(model, np.arange(12), 15, None, history)
    np.testing.assert_array_equal(walked[0], dense[0])
    np.testing.assert_array_equal(walked[1], dense[1])


def test_a_user_who_saw_almost_everything_gets_the_rest_then_empty_slots():
    model = _bias_model(n_users=3, n_items=20, seed=4)
    seen = sp.csr_matrix(np.ones((3, 20), np.float32))
    seen[1, [3, 7]] = 0.0  # user 1 has two unseen items (stored zeros are not seen)
    items, scores = model.recommend(np.arange(3), 5, seen)
    dense = _dense(model, np.arange(3), 5, seen)
    np.testing.assert_array_equal(items, dense[0])
    assert sorted(items[1, :2]) == [3, 7] and (items[1, 2:] == -1).all()
    assert (items[0] == -1).all() and np.isnan(scores[0]).all()
