"""Which users evaluation ranks: all with held-out interactions, a seeded sample above a cap."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recomart_pipeline.ml.evaluate import evaluation_users


def _held_out(n_users: int) -> sp.csr_matrix:
    rows = np.arange(0, n_users, 3)  # every third user has held-out interactions
    return sp.csr_matrix((np.ones(rows.size), (rows, rows % 5)), shape=(n_users, 5))


def test_every_user_with_held_out_interactions_up_to_the_cap():
    test = _held_out(30)
    everyone = np.arange(0, 30, 3)
    np.testing.assert_array_equal(evaluation_users(test), everyone)
    np.testing.assert_array_equal(evaluation_users(test, max_users=10, seed=1), everyone)


def test_above_the_cap_a_sorted_sample_fixed_by_the_seed():
    test = _held_out(300)
    sample = evaluation_users(test, max_users=20, seed=1)
    assert sample.size == 20 and np.all(np.diff(sample) > 0)
    assert set(sample.tolist()) <= set(range(0, 300, 3))
    np.testing.assert_array_equal(sample, evaluation_users(test, max_users=20, seed=1))
    assert not np.array_equal(sample, evaluation_users(test, max_users=20, seed=2))
