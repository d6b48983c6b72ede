"""Chunked top-K recommendation: same answer at any chunk size, seen items never shown."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info

from recomart_pipeline.ml._topk import (
    SAMPLED_SELECTION_MIN,
    SELECTION_SAMPLE,
    rank_candidates,
    top_k_product_rows,
    top_k_rows,
    top_k_sparse_rows,
)
from recomart_pipeline.ml.base import (
    RECOMMEND_CHUNK_BYTES,
    RECOMMEND_CHUNK_USERS,
    Ratings,
    Recommender,
    SeenItems,
    TrainingData,
)
from recomart_pipeline.ml.models import create_model
from recomart_pipeline_tests.ml.synthetic import make_synthetic


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
    assert model.default_chunk_size() == RECOMMEND_CHUNK_USERS  # a small catalogue
    huge = create_model("popularity")
    huge.n_items = 10**8
    assert huge.default_chunk_size() == 1
    huge.n_items = 10**6
    assert huge.default_chunk_size() * huge.n_items * 4 <= RECOMMEND_CHUNK_BYTES


def _nothing_seen(n_users: int) -> SeenItems:
    return SeenItems.of(None, n_users)


def test_top_k_breaks_ties_by_item_and_skips_non_finite_scores():
    scores = np.array([[1, 3, 3, np.nan, -np.inf, 2], [0, 0, 0, 0, 0, 0]], dtype=np.float32)
    items = np.full((2, 4), -1, dtype=np.int32)
    best = np.full((2, 4), np.nan, dtype=np.float32)
    seen = _nothing_seen(2)
    top_k_rows(scores, np.arange(2), seen.indptr, seen.indices, seen.stored, 4, items, best)
    assert items.tolist() == [[1, 2, 5, 0], [0, 1, 2, 3]]
    assert best[0].tolist() == [3, 3, 2, 1]
    short = np.full((1, 3), -1, dtype=np.int32)
    only_non_finite = np.array([[np.nan, -np.inf, np.inf]], dtype=np.float32)
    args = (seen.indptr, seen.indices, seen.stored, 3, short, np.full((1, 3), np.nan, np.float32))
    top_k_rows(only_non_finite, np.arange(1), *args)
    assert short.tolist() == [[-1, -1, -1]]


def _reference_top_k(scores: np.ndarray, seen: sp.csr_matrix, k: int) -> np.ndarray:
    """Sort each row by (score descending, item ascending) over finite, unseen items."""
    out = np.full((scores.shape[0], k), -1, dtype=np.int32)
    for row in range(scores.shape[0]):
        stored = set(seen[row].indices[seen[row].data != 0].tolist())
        allowed = [i for i in np.flatnonzero(np.isfinite(scores[row])) if i not in stored]
        ranked = sorted(allowed, key=lambda i: (-scores[row, i], i))[:k]
        out[row, : len(ranked)] = ranked
    return out


@pytest.mark.parametrize("n_items", [1, 5, 31, 32, 33, 100, 1000, 4099])
@pytest.mark.parametrize("k", [1, 3, 10, 100])
@pytest.mark.parametrize("values", ["ties", "sparse"])
def test_top_k_rows_equals_a_full_sort_with_ties_exclusions_and_non_finite(n_items, k, values):
    rng = np.random.default_rng(n_items * 100 + k)
    n_users = 40
    if values == "ties":
        # few distinct values: most rows are full of ties, also across the interleaved groups
        scores = rng.integers(0, 6, size=(n_users, n_items)).astype(np.float32)
    else:
        # item-kNN's shape: a few distinct positive scores, every other item exactly 0
        scores = rng.random((n_users, n_items)).astype(np.float32)
        scores[rng.random(scores.shape) < 0.9] = 0.0
    scores[rng.random(scores.shape) < 0.05] = np.nan
    scores[rng.random(scores.shape) < 0.05] = np.inf
    scores[rng.random(scores.shape) < 0.05] = -np.inf
    scores[0] = 7.0  # one row of nothing but ties
    seen = sp.random(n_users, n_items, density=0.3, format="csr", random_state=k, dtype=np.float32)
    seen.data[rng.random(seen.nnz) < 0.2] = 0.0  # stored zeros are not interactions
    expected = _reference_top_k(scores, seen, k)

    users = np.arange(n_users, dtype=np.int32)
    items = np.full((n_users, k), -1, dtype=np.int32)
    best = np.full((n_users, k), np.nan, dtype=np.float32)
    arrays = SeenItems.of(seen, n_users)
    top_k_rows(scores.copy(), users, arrays.indptr, arrays.indices, arrays.stored, k, items, best)
    np.testing.assert_array_equal(items, expected)
    filled = expected >= 0
    np.testing.assert_array_equal(best[filled], np.take_along_axis(scores, items, 1)[filled])
    assert np.isnan(best[~filled]).all()


@pytest.mark.parametrize("count", [SAMPLED_SELECTION_MIN - 1, SAMPLED_SELECTION_MIN, 20_000])
@pytest.mark.parametrize("k", [1, 10, 100, 200])
@pytest.mark.parametrize(
    "layout", ["random", "ascending", "descending", "best_sampled", "ties", "worst_sampled"]
)
def test_rank_candidates_is_a_full_sort_on_long_rows(count, k, layout):
    """Long rows are narrowed by a threshold from a sample of their candidates before the
    selection: the ranking is still exactly a full sort by (score descending, item
    ascending), whatever the candidates' order, including orders that put the best
    candidates (too few then pass the threshold) or the worst ones at the sampled places."""
    rng = np.random.default_rng(count + k)
    values = rng.pareto(2.0, count).astype(np.float32)
    if layout == "ties":
        values = rng.integers(1, 4, count).astype(np.float32)
    elif layout in ("ascending", "descending"):
        values = np.sort(values)[:: 1 if layout == "ascending" else -1].copy()
    elif layout in ("best_sampled", "worst_sampled"):
        step = max(count // SELECTION_SAMPLE, 1)
        sampled = np.zeros(count, bool)
        sampled[::step] = True
        ordered = np.sort(values)[::-1] if layout == "best_sampled" else np.sort(values)
        values = np.empty_like(values)
        values[sampled] = ordered[: sampled.sum()]
        values[~sampled] = ordered[sampled.sum() :]
    items = rng.permutation(count * 2)[:count].astype(np.int32)
    keys = np.empty(count, np.uint64)
    ranked = np.full(k, -1, np.int32)
    scores = np.full(k, np.nan, np.float32)
    rank_candidates(values.copy(), items, count, keys, ranked, scores)
    order = sorted(range(count), key=lambda c: (-values[c], items[c]))[:k]
    np.testing.assert_array_equal(ranked, items[order])
    np.testing.assert_array_equal(scores, values[order])


@pytest.mark.parametrize("name", ["svd", "als", "popularity"])
def test_recommend_is_the_same_on_one_thread_and_on_many(fitted, data, name):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least two numba threads")
    model, users = fitted[name], np.arange(fitted[name].n_users)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = model.recommend(users, 10, data.train.implicit, chunk_size=9)
        numba.set_num_threads(2)
        blas_before = [(p["filepath"], p["num_threads"]) for p in threadpool_info()]
        threaded = model.recommend(users, 10, data.train.implicit, chunk_size=9)
        assert [(p["filepath"], p["num_threads"]) for p in threadpool_info()] == blas_before
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(threaded[0], serial[0])
    np.testing.assert_array_equal(threaded[1], serial[1])


def test_popularity_walk_equals_scoring_every_user_densely():
    rng = np.random.default_rng(3)
    n_users, n_items = 60, 40
    train = TrainingData(
        n_users,
        n_items,
        Ratings(rng.integers(0, n_users, 900), rng.integers(0, n_items, 900), np.ones(900)),
    )
    model = create_model("popularity")
    model.fit(train)
    state = model.to_arrays()
    state["item_scores"][[3, 7]] = [np.nan, np.inf]  # never selectable, whatever the path
    model = type(model).from_arrays(model.params, n_users, n_items, state)
    seen = train.interactions()
    seen.data[::5] = 0.0  # stored zeros do not hide an item
    users = rng.integers(0, n_users, 200).astype(np.int32)  # repeats and any order
    for k in (1, 10, 45):  # 45 > items: padding
        walked = model.recommend(users, k, seen)
        dense = (
            np.full((users.size, k), -1, np.int32),
            np.full((users.size, k), np.nan, np.float32),
        )
        Recommender._recommend_into(
            model, users, min(k, n_items), SeenItems.of(seen, n_users), *dense, 16
        )
        np.testing.assert_array_equal(walked[0], dense[0])
        np.testing.assert_array_equal(walked[1], dense[1])
        assert not np.isin(walked[0], [3, 7]).any()


def test_scores_follow_a_refit(data):
    """Transposed factors are cached per fitted state; a refit must not reuse stale ones."""
    other = make_synthetic(n_users=data.train.n_users, n_items=data.train.n_items, seed=9)
    for name, params in (("svd", {"n_factors": 4, "n_epochs": 3}), ("als", {"n_factors": 4})):
        model = create_model(name, params)
        model.fit(data.train)
        model.score_items([0, 1])
        model.fit(other.train)
        fresh = create_model(name, params)
        fresh.fit(other.train)
        np.testing.assert_array_equal(model.score_items([0, 1]), fresh.score_items([0, 1]))


@pytest.mark.parametrize("n_items", [1, 7, 40, 1000])
@pytest.mark.parametrize("k", [1, 3, 10, 100])
def test_sparse_scores_rank_as_their_dense_rows(n_items, k):
    """A model may score sparsely (every item not stored scores 0): the same top-k as the
    dense rows, with negative, zero (either sign), tied and non-finite stored scores, and rows whose stored
    and seen items leave fewer than k, or no, implicit zeros."""
    rng = np.random.default_rng(n_items * 1000 + k)
    n_users = 60
    for density in (0.02, 0.3, 1.0):
        scores = sp.random(
            n_users, n_items, density=density, format="csr", random_state=k, dtype=np.float32
        )
        scores.data = rng.integers(-2, 4, scores.nnz).astype(np.float32)  # ties, zeros, < 0
        scores.data[rng.random(scores.nnz) < 0.05] = np.nan
        scores.data[rng.random(scores.nnz) < 0.05] = np.inf
        scores.data[rng.random(scores.nnz) < 0.05] = -0.0  # ties with 0.0, by item
        seen = sp.random(n_users, n_items, density=0.3, format="csr", random_state=n_items)
        seen.data[rng.random(seen.nnz) < 0.2] = 0.0  # stored zeros are not interactions
        users = np.arange(n_users, dtype=np.int32)
        arrays = SeenItems.of(seen, n_users)
        outputs = []
        for sparse in (True, False):
            items = np.full((n_users, k), -1, dtype=np.int32)
            best = np.full((n_users, k), np.nan, dtype=np.float32)
            if sparse:
                top_k_sparse_rows(
                    scores.indptr,
                    scores.indices,
                    scores.data,
                    n_items,
                    users,
                    arrays.indptr,
                    arrays.indices,
                    arrays.stored,
                    k,
                    items,
                    best,
                )
            else:
                dense = np.ascontiguousarray(scores.toarray(), dtype=np.float32)
                top_k_rows(
                    dense, users, arrays.indptr, arrays.indices, arrays.stored, k, items, best
                )
            outputs.append((items, best))
        np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
        np.testing.assert_array_equal(outputs[0][1], outputs[1][1])


@pytest.mark.parametrize("n_items", [1, 7, 40, 1000])
@pytest.mark.parametrize("k", [1, 3, 10, 100])
def test_a_product_ranks_as_scipy_computes_it(n_items, k):
    """``top_k_product_rows`` sums ``left @ right`` itself (item-kNN's users' items times the
    similarities): the same items and the same float32 scores, bit for bit, as ranking
    scipy's product, with weights that cancel to exact zeros (scipy drops those), ties,
    negative and non-finite entries, rows with no items, and seen items."""
    rng = np.random.default_rng(n_items * 7 + k)
    n_users, n_left = 50, max(3, n_items // 2)
    for density in (0.05, 0.4):
        left = sp.random(
            n_users, n_left, density=density, format="csr", random_state=k, dtype=np.float32
        )
        left.data = rng.choice(np.float32([0.5, 1.0, 1.5, -1.0, 2.0]), left.nnz)
        right = sp.random(
            n_left, n_items, density=density, format="csr", random_state=n_items, dtype=np.float32
        )
        right.data = rng.choice(np.float32([0.25, 1.0, -0.5, 0.1, 3.0]), right.nnz)
        right.data[rng.random(right.nnz) < 0.03] = np.inf
        if density > 0.1:  # arbitrary float32s: a fused multiply-add would round differently
            left.data = rng.random(left.nnz, dtype=np.float32)
            right.data = rng.standard_normal(right.nnz).astype(np.float32)
        seen = sp.random(n_users, n_items, density=0.2, format="csr", random_state=n_left)
        users = np.arange(n_users, dtype=np.int32)
        arrays = SeenItems.of(seen, n_users)
        rest = (users, arrays.indptr, arrays.indices, arrays.stored, k)
        product = sp.csr_matrix(left @ right)
        assert product.dtype == np.float32
        expected = (np.full((n_users, k), -1, np.int32), np.full((n_users, k), np.nan, np.float32))
        top_k_sparse_rows(product.indptr, product.indices, product.data, n_items, *rest, *expected)
        fused = (np.full((n_users, k), -1, np.int32), np.full((n_users, k), np.nan, np.float32))
        top_k_product_rows(
            *(left.indptr, left.indices, left.data),
            *(right.indptr, right.indices, right.data),
            n_items,
            *rest,
            *fused,
        )
        np.testing.assert_array_equal(fused[0], expected[0])
        np.testing.assert_array_equal(fused[1], expected[1])


def test_item_knn_ranks_from_the_product_as_from_its_dense_scores(data):
    """item-kNN's recommend (the fused product, on threads) gives what ranking its dense
    ``score_items`` rows gives, whatever the chunking."""
    model = create_model("item_knn", {"k": 20})
    model.fit(data.train)
    exclude = data.train.interactions()
    users = np.arange(model.n_users)
    dense = model.score_items(users)
    items = np.full((users.size, 10), -1, np.int32)
    scores = np.full((users.size, 10), np.nan, np.float32)
    arrays = SeenItems.of(exclude, model.n_users)
    top_k_rows(
        dense,
        users.astype(np.int32),
        arrays.indptr,
        arrays.indices,
        arrays.stored,
        10,
        items,
        scores,
    )
    for chunk in (1, 7, 1000):
        got_items, got_scores = model.recommend(users, 10, exclude, chunk_size=chunk)
        np.testing.assert_array_equal(got_items, items)
        np.testing.assert_array_equal(got_scores, scores)


def test_recommend_takes_sparse_scores(fitted, data):
    """``recommend`` ranks a model's sparse scores (most items exactly 0, as item-kNN's) as
    it ranks the same scores given densely."""
    model = fitted["als"]

    def clipped(users: np.ndarray) -> np.ndarray:
        scores = fitted["als"]._score_items(users)
        return np.where(scores > np.quantile(scores, 0.9), scores, 0).astype(np.float32)

    class Dense(type(model)):  # type: ignore[misc]
        def _score_items(self, users: np.ndarray) -> np.ndarray:
            return clipped(users)

    class Sparse(type(model)):  # type: ignore[misc]
        def _score_items(self, users: np.ndarray) -> sp.csr_matrix:
            return sp.csr_matrix(clipped(users))

    state = (model.params, model.n_users, model.n_items, model.to_arrays())
    dense, sparse = Dense.from_arrays(*state), Sparse.from_arrays(*state)
    users = np.arange(model.n_users, dtype=np.int32)
    exclude = data.train.interactions()
    for k in (1, 5, 50, 240):
        expected = dense.recommend(users, k, exclude, chunk_size=7)
        got = sparse.recommend(users, k, exclude, chunk_size=7)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
