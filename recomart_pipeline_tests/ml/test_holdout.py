"""The validation split cut from the training data for model selection."""

from __future__ import annotations

import numpy as np
import pytest

from recomart_pipeline.ml.holdout import holdout_split


def _pairs(matrix) -> set[tuple[int, int]]:
    coo = matrix.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


@pytest.mark.parametrize("method", ["per_user", "random"])
def test_held_out_pairs_leave_the_fit_data_entirely(data, method):
    split = holdout_split(data.train, method, 0.25, seed=3)
    train_pairs = _pairs(data.train.interactions())
    fit_pairs, held = _pairs(split.fit.interactions()), _pairs(split.interactions)
    assert fit_pairs | held == train_pairs and not fit_pairs & held
    assert 0.2 < len(held) / len(train_pairs) < 0.3
    # a held-out pair's rating is a validation rating, never a training one
    rated = set(zip(split.ratings.users.tolist(), split.ratings.items.tolist(), strict=True))
    fit_rated = set(
        zip(split.fit.ratings.users.tolist(), split.fit.ratings.items.tolist(), strict=True)
    )
    assert rated <= held and not fit_rated & held
    assert len(split.ratings) + len(split.fit.ratings) == len(data.train.ratings)
    again = holdout_split(data.train, method, 0.25, seed=3)
    assert _pairs(again.interactions) == held
    assert _pairs(holdout_split(data.train, method, 0.25, seed=4).interactions) != held


def test_per_user_holds_out_a_share_of_every_user_and_never_all(data):
    split = holdout_split(data.train, "per_user", 0.2, seed=0)
    before = np.diff(data.train.interactions().indptr)
    held = np.diff(split.interactions.indptr)
    kept = np.diff(split.fit.interactions().indptr)
    eligible = before >= 2
    assert (held[eligible] == np.maximum(1, np.floor(before[eligible] * 0.2))).all()
    assert (held[~eligible] == 0).all() and (kept >= 1)[before >= 1].all()


def test_sorted_contains_is_isin_for_sorted_csr_keys():
    from recomart_pipeline.ml.keys import sorted_contains

    rng = np.random.default_rng(3)
    for size, queries in ((0, 5), (1, 4), (50, 200), (5_000, 3_000)):
        sorted_keys = np.unique(rng.integers(0, 10_000, size, dtype=np.int64))
        keys = rng.integers(-5, 10_050, queries, dtype=np.int64)  # below, inside and beyond
        np.testing.assert_array_equal(
            sorted_contains(sorted_keys, keys), np.isin(keys, sorted_keys)
        )


def test_sorted_unique_is_np_unique():
    from recomart_pipeline.ml.keys import sorted_unique

    rng = np.random.default_rng(4)
    for size, high in ((0, 5), (1, 5), (7, 3), (20_000, 50), (20_000, 10**12)):
        keys = rng.integers(-(10**6), high, size, dtype=np.int64)  # repeats, negatives
        unique = sorted_unique(keys)
        np.testing.assert_array_equal(unique, np.unique(keys))
        assert unique.dtype == keys.dtype
