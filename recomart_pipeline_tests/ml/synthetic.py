"""A small latent-factor world with known structure, so tests can tell signal from noise.

Users and items get hidden factor vectors; which items a user interacts with is driven by
affinity (plus a mild popularity term), and ratings are mean + biases + affinity + noise.
Each user's interactions are split 80/20 into train and held-out test, mirroring the
features task's artifacts. The noiseless ranking key is kept (``true_scores``) as the ceiling
a benchmark can compare models with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recomart_pipeline.ml.base import Ratings, TrainingData


@dataclass(frozen=True)
class SyntheticData:
    train: TrainingData
    test_ratings: Ratings
    test_interactions: sp.csr_matrix
    # The generator's own ranking key without its sampling noise (2·affinity + popularity,
    # users x items): ranking by it is the best any model can do on this world, so
    # benchmarks report it as the ceiling of what the data allows.
    true_scores: np.ndarray | None = None


def make_synthetic(
    n_users: int = 300,
    n_items: int = 200,
    per_user: int = 30,
    n_factors: int = 4,
    noise: float = 0.3,
    seed: int = 0,
) -> SyntheticData:
    rng = np.random.default_rng(seed)
    user_f = rng.standard_normal((n_users, n_factors))
    item_f = rng.standard_normal((n_items, n_factors))
    affinity = user_f @ item_f.T / np.sqrt(n_factors)
    popularity = rng.normal(0.0, 0.5, n_items)
    # Gumbel top-k: each user samples per_user distinct items with p ∝ exp(2·affinity + pop).
    keys = 2.0 * affinity + popularity + rng.gumbel(size=affinity.shape)
    chosen = np.argsort(-keys, axis=1)[:, :per_user]
    users = np.repeat(np.arange(n_users), per_user)
    items = chosen.ravel()
    user_bias = rng.normal(0.0, 0.3, n_users)
    latent = 3.2 + user_bias[users] + 0.5 * popularity[items] + affinity[users, items]
    ratings = np.clip(np.rint(latent + rng.normal(0.0, noise, users.size)), 1, 5)

    test_mask = (rng.random(users.size) < 0.2) & (np.arange(users.size) % per_user != 0)
    # every test item must be known in train (the features task guarantees the same)
    train_items = np.zeros(n_items, dtype=bool)
    train_items[items[~test_mask]] = True
    test_mask &= train_items[items]
    tr, te = ~test_mask, test_mask
    implicit = sp.csr_matrix(
        (ratings[tr].astype(np.float32), (users[tr], items[tr])), shape=(n_users, n_items)
    )
    test_interactions = sp.csr_matrix(
        (np.ones(te.sum(), np.float32), (users[te], items[te])), shape=(n_users, n_items)
    )
    return SyntheticData(
        train=TrainingData(n_users, n_items, Ratings(users[tr], items[tr], ratings[tr]), implicit),
        test_ratings=Ratings(users[te], items[te], ratings[te]),
        test_interactions=test_interactions,
        true_scores=2.0 * affinity + popularity,
    )
