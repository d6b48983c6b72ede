"""The validation split: held-out interactions cut from the training data for model selection.

Choosing a model (or its hyper-parameters) by its test score and then reporting that score
is optimistic: with several candidates the best test figure is partly luck, and a gate can
pass on it. So the training task cuts a validation split from the training data, candidates
are compared on it, and the test split is scored only for the selected model and the
baseline.

The split works on the ``(user, item)`` pairs training sees (the features task aggregates
events into pairs, without their times):

- ``per_user``: every user with at least two pairs holds out ``fraction`` of them (at least
  one, never all), the pair-level counterpart of the ``temporal_per_user`` test protocol;
  every validation user keeps training pairs, so every one can be scored;
- ``random``: a seeded ``fraction`` of all pairs, the counterpart of the ``random`` protocol.

A held-out pair leaves both the implicit matrix and the ratings, so no model sees it. The
split is a pure function of the data, method, fraction and seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from recomart_pipeline.ml.base import Ratings, TrainingData

HoldoutMethod = Literal["per_user", "random"]


@dataclass(frozen=True)
class Holdout:
    """Training data without the held-out pairs, and those pairs (ratings and positives)."""

    fit: TrainingData
    ratings: Ratings
    interactions: sp.csr_matrix


def _held_pairs(
    matrix: sp.csr_matrix, method: HoldoutMethod, fraction: float, seed: int
) -> np.ndarray:
    """A boolean mask over the stored entries of ``matrix`` (CSR, sorted): held out or not."""
    keys = np.random.default_rng(seed).random(matrix.nnz)
    if method == "random":
        held: np.ndarray = keys < fraction
        return held
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    # rank of each entry within its row by its random key: 0 = held out first
    order = np.lexsort((keys, rows))
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[order] = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], counts)
    quota = np.maximum(1, np.floor(counts * fraction)).astype(np.int64)
    quota = np.where(counts >= 2, np.minimum(quota, counts - 1), 0)
    mask: np.ndarray = rank < quota[rows]
    return mask


def holdout_split(
    train: TrainingData, method: HoldoutMethod, fraction: float, seed: int
) -> Holdout:
    """Cut a validation split from ``train`` (same index space on both sides)."""
    pairs = sp.csr_matrix(train.interactions(), dtype=np.float32, copy=True)
    pairs.eliminate_zeros()
    pairs.sort_indices()
    held = _held_pairs(pairs, method, fraction, seed)
    rows = np.repeat(np.arange(train.n_users), np.diff(pairs.indptr))
    shape = (train.n_users, train.n_items)
    held_keys = rows[held].astype(np.int64) * train.n_items + pairs.indices[held]
    ratings = train.ratings
    rating_keys = ratings.users.astype(np.int64) * train.n_items + ratings.items
    rating_held = np.isin(rating_keys, held_keys)
    implicit = None
    if train.implicit is not None:
        kept = sp.csr_matrix((pairs.data[~held], (rows[~held], pairs.indices[~held])), shape=shape)
        kept.sort_indices()
        implicit = kept
    fit = TrainingData(
        train.n_users, train.n_items, ratings.subset(np.flatnonzero(~rating_held)), implicit
    )
    positives = sp.csr_matrix(
        (np.ones(int(held.sum()), np.float32), (rows[held], pairs.indices[held])), shape=shape
    )
    return Holdout(fit, ratings.subset(np.flatnonzero(rating_held)), positives)
