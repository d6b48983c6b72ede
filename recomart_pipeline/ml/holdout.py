"""The validation split: held-out interactions cut from the training data for model selection.

Choosing a model (or its hyper-parameters) by its test score and then reporting that score
is optimistic: with several candidates the best test figure is partly luck, and a gate can
pass on it. So the training task cuts a validation split from the training data, candidates
are compared on it, and the test split is scored only for the selected model and the
baseline.

The temporal methods are the test protocols of the preparation task applied once more, to
the train events (the features task's ``train_events``, in time order), with the features
task's rules for what the two sides hold:

- ``temporal_global``: one cut-off, the ``1 - fraction`` quantile of the train event times;
  events at or after it are held out, so every fit event precedes every validation target;
- ``temporal_per_user``: each user's latest ``fraction`` of events (at least one, and only
  for users who keep one), so per user no fit event follows a validation target.

The fit side is rebuilt from its events as the features task builds ``train_implicit`` and
``train_ratings`` (confidences are summed weights, zero sums left out; a pair's rating is its
latest); the validation targets are the pairs of held-out positive events that the fit side
does not have (they could never be recommended), and the validation ratings the latest held-out
rating of each pair; held-out events of a user or item without fit events are dropped, as the
features task drops test rows of users or items unseen in train.

Two methods work on the ``(user, item)`` pairs alone, for features outputs without events:

- ``per_user``: every user with at least two pairs holds out ``fraction`` of them at random
  (at least one, never all);
- ``random``: a seeded ``fraction`` of all pairs, the counterpart of the ``random`` protocol.

A held-out pair leaves both the implicit matrix and the ratings, so no model sees it. Every
split is a pure function of the data, method, fraction and seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from recomart_pipeline.contract.errors import DataValidationError, SchemaError
from recomart_pipeline.ml.base import Ratings, TrainingData
from recomart_pipeline.ml.keys import sorted_contains, sorted_unique

HoldoutMethod = Literal["temporal_global", "temporal_per_user", "per_user", "random"]
TEMPORAL_METHODS: frozenset[str] = frozenset({"temporal_global", "temporal_per_user"})
EVENT_COLUMNS = ("user_idx", "item_idx", "timestamp", "weight", "rating", "positive")


@dataclass(frozen=True)
class TrainEvents:
    """The train events in time order: indices, times (ns since the epoch, UTC), the weight
    each adds to its pair's confidence, its rating (NaN: not a rating) and positive flag."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray
    weights: np.ndarray
    ratings: np.ndarray
    positive: np.ndarray

    def __len__(self) -> int:
        return int(self.users.size)


def read_train_events(path: Path) -> TrainEvents:
    """The features task's ``train_events`` parquet, checked for its columns."""
    table = pq.read_table(path)
    missing = [c for c in EVENT_COLUMNS if c not in table.column_names]
    if missing:
        raise SchemaError(
            f"{path.name} lacks column(s) {missing} (it has {table.column_names})",
            hint="the features task must write the documented train_events columns",
        )
    times = table["timestamp"].cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    columns = {name: table[name] for name in EVENT_COLUMNS}
    for name in ("user_idx", "item_idx", "weight", "positive"):
        if columns[name].null_count:
            raise DataValidationError(f"{path.name} has missing values in column '{name}'")
    if times.null_count:
        raise DataValidationError(f"{path.name} has missing values in column 'timestamp'")
    return TrainEvents(
        users=columns["user_idx"].to_numpy().astype(np.int32),
        items=columns["item_idx"].to_numpy().astype(np.int32),
        times=times.to_numpy(),
        weights=columns["weight"].to_numpy().astype(np.float32),
        ratings=columns["rating"].to_numpy(zero_copy_only=False).astype(np.float32),
        positive=columns["positive"].to_numpy(zero_copy_only=False).astype(bool),
    )


@dataclass(frozen=True)
class Holdout:
    """Training data without the held-out pairs, and those pairs (ratings and positives).

    ``cutoff``: temporal_global's cut-off time (ns), the earliest held-out event time."""

    fit: TrainingData
    ratings: Ratings
    interactions: sp.csr_matrix
    cutoff: int | None = None


def _held_pairs(
    matrix: sp.csr_matrix, method: HoldoutMethod, fraction: float, seed: int
) -> np.ndarray:
    """A boolean mask over the stored entries of ``matrix`` (CSR, sorted): held out or not."""
    keys = np.random.default_rng(seed).random(matrix.nnz)
    if method == "random":
        held: np.ndarray = keys < fraction
        return held
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    # the quota with the smallest keys are held out
    return _latest_share(rows, -keys, matrix.shape[0], fraction)


def _latest_share(
    groups: np.ndarray, order: np.ndarray, n_groups: int, fraction: float
) -> np.ndarray:
    """Per group, the entries last by ``order`` making up ``fraction`` of the group (at least
    one), for groups that keep at least one entry: the preparation task's per-user rule."""
    counts = np.bincount(groups, minlength=n_groups)
    # rank of each entry within its group by ``order``, counted from the end
    sorted_entries = np.lexsort((order, groups))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(groups.size, dtype=np.int64)
    rank[sorted_entries] = np.arange(groups.size) - np.repeat(starts, counts)
    from_end = counts[groups] - 1 - rank
    quota = np.maximum(1, np.floor(counts * fraction)).astype(np.int64)
    mask: np.ndarray = (from_end < quota[groups]) & (counts[groups] > quota[groups])
    return mask


def holdout_split(
    train: TrainingData,
    method: HoldoutMethod,
    fraction: float,
    seed: int,
    events: TrainEvents | None = None,
) -> Holdout:
    """Cut a validation split from ``train`` (same index space on both sides); the temporal
    methods need ``events``, the train events ``train`` was built from."""
    if method in TEMPORAL_METHODS:
        if events is None:
            raise ValueError(f"the {method} validation split needs the train events")
        return _temporal_split(train, method, fraction, events)
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


def temporal_held(events: TrainEvents, method: str, fraction: float) -> np.ndarray:
    """Which events a temporal method holds out (ties in time keep the events' order, as
    the preparation task's split does)."""
    position = np.arange(len(events))
    if method == "temporal_global":
        by_time = np.sort(events.times, kind="stable")
        index = min(int(np.floor(len(events) * (1 - fraction))), len(events) - 1)
        held: np.ndarray = events.times >= by_time[index]
        return held
    n_users = int(events.users.max()) + 1 if len(events) else 0
    # order by time, then by position (stable): the latest events get the largest order
    order = np.empty(len(events), dtype=np.int64)
    order[np.lexsort((position, events.times))] = position
    return _latest_share(events.users, order, n_users, fraction)


def _latest_ratings(events: TrainEvents, mask: np.ndarray, n_items: int) -> Ratings:
    """The latest rating of each pair among the ``mask`` events, sorted by (user, item)."""
    rated = np.flatnonzero(mask & ~np.isnan(events.ratings))
    rated = rated[np.lexsort((rated, events.times[rated]))]  # time order, ties by position
    keys = events.users[rated].astype(np.int64) * n_items + events.items[rated]
    # np.unique keeps the first occurrence: read the events backwards to keep the latest
    unique, first_from_end = np.unique(keys[::-1], return_index=True)
    chosen = rated[::-1][first_from_end]
    return Ratings(unique // n_items, unique % n_items, events.ratings[chosen])


def _temporal_split(
    train: TrainingData, method: str, fraction: float, events: TrainEvents
) -> Holdout:
    n_users, n_items = train.n_users, train.n_items
    for what, idx, size in (("user", events.users, n_users), ("item", events.items, n_items)):
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise DataValidationError(
                f"train_events has {what}_idx values up to {idx.max()}, beyond the {size} "
                f"{what}s of the training matrix",
                hint="train_events and train_implicit must come from the same features run",
            )
    held = temporal_held(events, method, fraction)
    cutoff = int(events.times[held].min()) if method == "temporal_global" and held.any() else None
    shape = (n_users, n_items)
    kept = ~held
    implicit = sp.csr_matrix(
        (events.weights[kept], (events.users[kept], events.items[kept])),
        shape=shape,
        dtype=np.float32,
    )
    implicit.sum_duplicates()
    implicit.eliminate_zeros()
    implicit.sort_indices()
    fit = TrainingData(n_users, n_items, _latest_ratings(events, kept, n_items), implicit)
    # as the features task drops test rows of users or items train never saw: a held-out
    # event counts only when its user and its item have fit events
    known_users = np.bincount(events.users[kept], minlength=n_users) > 0
    known_items = np.bincount(events.items[kept], minlength=n_items) > 0
    held &= known_users[events.users] & known_items[events.items]
    # targets: pairs of held-out positives the fit side does not have
    target = held & events.positive
    keys = sorted_unique(events.users[target].astype(np.int64) * n_items + events.items[target])
    rows = np.repeat(np.arange(n_users), np.diff(implicit.indptr))
    seen = rows.astype(np.int64) * n_items + implicit.indices
    keys = keys[~sorted_contains(seen, keys)]
    positives = sp.csr_matrix(
        (np.ones(keys.size, np.float32), (keys // n_items, keys % n_items)), shape=shape
    )
    return Holdout(fit, _latest_ratings(events, held, n_items), positives, cutoff)
