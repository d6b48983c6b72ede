"""ALS confidence options: each one changes the confidence matrix exactly as documented, and
the defaults keep Hu et al.'s ``1 + alpha·m`` (so default fits are what they were)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recomart_pipeline.ml.als import confidence_matrix
from recomart_pipeline.ml.base import Ratings, TrainingData
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.params import ALSParams


@pytest.fixture()
def counts() -> sp.csr_matrix:
    """Long-tailed repeat counts; item 0 is had by every user (its BM25 idf is 0)."""
    rng = np.random.default_rng(5)
    dense = np.where(rng.random((40, 12)) < 0.3, rng.integers(1, 60, (40, 12)), 0)
    dense[:, 0] = 1
    matrix = sp.csr_matrix(dense.astype(np.float32))
    matrix.sort_indices()
    return matrix


def _same_pattern(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)


def test_default_confidence_is_one_plus_alpha_times_the_value(counts):
    confidence = confidence_matrix(counts, ALSParams(alpha=2.5))
    assert _same_pattern(confidence, counts)
    np.testing.assert_array_equal(confidence.data, np.float32(1) + np.float32(2.5) * counts.data)


def test_log_confidence_follows_the_formula(counts):
    params = ALSParams(alpha=3.0, confidence="log", epsilon=0.5)
    confidence = confidence_matrix(counts, params)
    expected = 1 + 3.0 * np.log1p(counts.data.astype(np.float64) / 0.5)
    assert _same_pattern(confidence, counts)
    np.testing.assert_allclose(confidence.data, expected, rtol=1e-6)
    # the point of log scaling: a 50x count is far less than 50x as confident
    linear = confidence_matrix(counts, ALSParams(alpha=3.0))
    assert np.ptp(confidence.data) < np.ptp(linear.data) / 5


def test_bm25_weighting_reweights_by_item_length_and_user_idf(counts):
    params = ALSParams(alpha=1.0, weighting="bm25", bm25_k1=100.0, bm25_b=0.8)
    confidence = confidence_matrix(counts, params)
    assert _same_pattern(confidence, counts)
    # implicit's bm25_weight on the item x user matrix, written out
    items = counts.T.tocoo()
    n_rows = items.shape[0]
    idf = np.log(n_rows) - np.log1p(np.bincount(items.col, minlength=items.shape[1]))
    lengths = np.asarray(counts.sum(axis=0)).ravel()
    norm = 0.2 + 0.8 * lengths / lengths.mean()
    weight = items.data * 101.0 / (100.0 * norm[items.row] + items.data) * idf[items.col]
    expected = sp.csr_matrix((weight, (items.col, items.row)), shape=counts.shape)
    expected.sort_indices()
    np.testing.assert_allclose(confidence.data, 1 + expected.data, rtol=1e-5)
    assert not np.allclose(confidence.data, 1 + counts.data)


def test_each_option_changes_the_fitted_model(counts):
    empty = Ratings(np.empty(0), np.empty(0), np.empty(0))
    train = TrainingData(counts.shape[0], counts.shape[1], empty, counts)
    base = {"n_factors": 4, "n_iterations": 3, "seed": 1}
    factors = {}
    for name, extra in {
        "default": {},
        "log": {"confidence": "log"},
        "bm25": {"weighting": "bm25"},
    }.items():
        model = create_model("als", {**base, **extra})
        model.fit(train)
        factors[name] = model.to_arrays()["user_factors"]
    assert not np.allclose(factors["default"], factors["log"])
    assert not np.allclose(factors["default"], factors["bm25"])
