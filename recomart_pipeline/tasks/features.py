"""Features: dense indices, rating triples, the implicit matrix and user/item statistics.

Users and items get contiguous indices (ids sorted, numbered from 0) built from the train
split only — a model cannot learn anything about an id it never saw — so test rows with an
unknown user or item are dropped and counted.

The implicit confidence of a (user, item) pair is the sum of its train events' weights:
``event_weights`` per event type (default view 1, add_to_cart 3, purchase 5); a rating event
weighs its rating value when it is at least ``positive_rating_threshold`` (a liked item) and
``low_rating_weight`` otherwise (the user saw it but did not like it). Pairs whose weights sum
to zero are left out of the matrix. A row that ingestion aggregated from several events
(its ``weight``) counts as that many events.

Held-out positives (``test_interactions``) are test add-to-cart/purchase events and ratings at
or above the threshold, one row per pair. Pairs the user already has in train are left out by
default, since recommenders exclude seen items and such a positive could never be hit.

Under the ``user_holdout`` protocol the held-out users have no train events: preparation
passes their earlier events as ``fold_in``. They are numbered apart (``holdout_user_index``,
ids sorted) and their fold-in events become ``holdout_history``, weighed exactly as
``train_implicit`` (plus their rating triples), the history a model ranks them from without
training on it; their later positives are ``holdout_test_interactions``, indexed by history
row, with pairs already in the history left out as pairs seen in train are. Items unknown to
train are dropped from both (a model cannot score them) and counted. With the other
protocols these outputs are empty.

``train_events`` keeps every train event in time order with its weight, rating and whether it
is a positive, so the training task can cut a temporal validation split by these same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.contract.task import TaskContext, TaskResult
from recomart_pipeline.tasks._tables import (
    TIMESTAMP,
    read_categorical,
    save_npz,
    split_of,
    write_frame,
)
from recomart_pipeline.tasks.specs.features import FOLD_IN, ITEMS, TEST, TRAIN, USERS, Config

IDX = pa.int32()
# The held-out tables carry the split protocol preparation recorded (see _tables.SPLIT_KEY),
# and so do the train events, from which training cuts a validation split that mirrors it.
SPLIT_TABLES = frozenset(
    {"test_ratings", "test_interactions", "holdout_test_interactions", "train_events"}
)
RATINGS_SCHEMA = pa.schema([("user_idx", IDX), ("item_idx", IDX), ("rating", pa.float32())])
PAIRS_SCHEMA = pa.schema([("user_idx", IDX), ("item_idx", IDX)])
EVENTS_SCHEMA = pa.schema(
    [
        ("user_idx", IDX),
        ("item_idx", IDX),
        ("timestamp", TIMESTAMP),
        ("weight", pa.float32()),
        ("rating", pa.float32()),
        ("positive", pa.bool_()),
    ]
)
USER_INDEX_SCHEMA = pa.schema([("user_id", pa.string()), ("user_idx", IDX)])
HOLDOUT_INDEX_SCHEMA = pa.schema([("user_id", pa.string()), ("history_row", IDX)])
ITEM_INDEX_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("item_idx", IDX),
        ("category", pa.string()),
        ("price", pa.float64()),
    ]
)
_COMMON_STATS = [
    ("n_interactions", pa.int64()),
    ("n_ratings", pa.int64()),
    ("mean_rating", pa.float32()),
    ("last_timestamp", TIMESTAMP),
]
USER_STATS_SCHEMA = pa.schema(
    [
        ("user_idx", IDX),
        ("user_id", pa.string()),
        *_COMMON_STATS,
        ("n_items", pa.int64()),
        ("activity_rank", pa.int32()),
        ("top_category", pa.string()),
        ("region", pa.string()),
    ]
)
ITEM_STATS_SCHEMA = pa.schema(
    [
        ("item_idx", IDX),
        ("item_id", pa.string()),
        *_COMMON_STATS,
        ("n_users", pa.int64()),
        ("popularity_rank", pa.int32()),
        ("category", pa.string()),
        ("price", pa.float64()),
    ]
)
_ID_COLUMNS = ["user_id", "item_id", "event_type"]


@dataclass(frozen=True)
class _Encoded:
    """A split with dense user/item codes (-1 = unknown in train)."""

    users: np.ndarray
    items: np.ndarray
    events: pd.Series
    ratings: np.ndarray
    timestamps: np.ndarray  # int64 nanoseconds since the epoch, UTC
    weights: np.ndarray  # events each row stands for (ingestion's aggregate); 1 if unset


def _read_split(path: Path) -> pd.DataFrame:
    """Ids as categoricals (mapping 20M strings to indices becomes a remap of categories),
    timestamps as int64 nanoseconds (numpy has no fast path for tz-aware values)."""
    table = read_categorical(path, _ID_COLUMNS)
    nanos = table["timestamp"].cast(TIMESTAMP).cast(pa.int64())
    return table.set_column(
        table.schema.get_field_index("timestamp"), "timestamp", nanos
    ).to_pandas()


def _encode(frame: pd.DataFrame, user_ids: pd.Index, item_ids: pd.Index) -> _Encoded:
    users = frame["user_id"].cat.set_categories(user_ids).cat.codes.to_numpy(np.int32)
    items = frame["item_id"].cat.set_categories(item_ids).cat.codes.to_numpy(np.int32)
    return _Encoded(
        users=users,
        items=items,
        events=frame["event_type"],
        ratings=frame["rating"].to_numpy(np.float32, na_value=np.nan),
        timestamps=frame["timestamp"].to_numpy(),
        weights=frame.get("weight", pd.Series(1.0, frame.index)).fillna(1.0).to_numpy(np.float32),
    )


def _subset(encoded: _Encoded, keep: np.ndarray) -> _Encoded:
    return _Encoded(
        encoded.users[keep],
        encoded.items[keep],
        encoded.events[keep].reset_index(drop=True),
        encoded.ratings[keep],
        encoded.timestamps[keep],
        encoded.weights[keep],
    )


def _sorted_ids(column: pd.Series) -> pd.Index:
    """The ids occurring in ``column``, sorted (bincount: no sort of 20M codes)."""
    used = np.bincount(column.cat.codes[column.notna()], minlength=len(column.cat.categories))
    return column.cat.categories[used > 0].sort_values()


def _is_rating(encoded: _Encoded) -> np.ndarray:
    return (encoded.events == "rating").to_numpy() & ~np.isnan(encoded.ratings)


def _ratings(encoded: _Encoded) -> pd.DataFrame:
    """Explicit ratings, the latest per (user, item) pair (events are time-ordered)."""
    rated = _is_rating(encoded)
    frame = pd.DataFrame(
        {
            "user_idx": encoded.users[rated],
            "item_idx": encoded.items[rated],
            "rating": encoded.ratings[rated],
        }
    )
    frame = frame.drop_duplicates(["user_idx", "item_idx"], keep="last")
    return frame.sort_values(["user_idx", "item_idx"], kind="stable")


def _weights(encoded: _Encoded, config: Config) -> np.ndarray:
    by_type = encoded.events.map(config.event_weights).astype(np.float32).fillna(0.0).to_numpy()
    liked = encoded.ratings >= config.positive_rating_threshold
    rating_weight = np.where(liked, encoded.ratings, np.float32(config.low_rating_weight))
    weight = np.where(_is_rating(encoded), rating_weight, by_type).astype(np.float32)
    return weight * encoded.weights  # an aggregated row counts as that many events


def _matrix(encoded: _Encoded, values: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR with duplicate pairs summed, zeros dropped and sorted indices."""
    matrix = sp.csr_matrix((values, (encoded.users, encoded.items)), shape=shape, dtype=np.float32)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def _pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    return users.astype(np.int64) * n_items + items


def _is_positive(encoded: _Encoded, config: Config) -> np.ndarray:
    """Events that count as a held-out positive: a positive event type or a liked rating."""
    liked = _is_rating(encoded) & (encoded.ratings >= config.positive_rating_threshold)
    positive: np.ndarray = encoded.events.isin(config.positive_event_types).to_numpy() | liked
    return positive


def _train_events(train: _Encoded, weights: np.ndarray, config: Config) -> pd.DataFrame:
    """Every train event (time order kept) with what training needs to cut a temporal
    validation split by the same rules as the test split: the weight it adds to its pair's
    confidence, its rating (NaN: not a rating event) and whether it is a positive."""
    return pd.DataFrame(
        {
            "user_idx": train.users,
            "item_idx": train.items,
            "timestamp": pd.to_datetime(train.timestamps, unit="ns", utc=True),
            "weight": weights,
            "rating": np.where(_is_rating(train), train.ratings, np.float32(np.nan)),
            "positive": _is_positive(train, config),
        }
    )


def _test_positives(test: _Encoded, implicit: sp.csr_matrix, config: Config) -> pd.DataFrame:
    positive = _is_positive(test, config)
    n_items = implicit.shape[1]
    keys = np.unique(_pair_keys(test.users[positive], test.items[positive], n_items))
    if config.exclude_seen_in_train and implicit.nnz:
        # CSR with sorted indices enumerates its pairs in ascending key order.
        rows = np.repeat(np.arange(implicit.shape[0]), np.diff(implicit.indptr))
        seen = _pair_keys(rows, implicit.indices, n_items)
        position = np.minimum(np.searchsorted(seen, keys), len(seen) - 1)
        keys = keys[seen[position] != keys]
    return pd.DataFrame({"user_idx": keys // n_items, "item_idx": keys % n_items})


def _group_stats(keys: np.ndarray, size: int, encoded: _Encoded) -> dict[str, Any]:
    """Counts, mean rating and last event time per user (or item) index."""
    rated = _is_rating(encoded)
    n_ratings = np.bincount(keys[rated], minlength=size)
    rating_sum = np.bincount(keys[rated], weights=encoded.ratings[rated], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_rating = np.where(n_ratings > 0, rating_sum / n_ratings, np.nan).astype(np.float32)
    n_interactions = np.bincount(keys, minlength=size)
    last = pd.Series(encoded.timestamps).groupby(keys).max().reindex(range(size))
    return {
        "n_interactions": n_interactions,
        "n_ratings": n_ratings,
        "mean_rating": mean_rating,
        "last_timestamp": pd.to_datetime(last.to_numpy(), unit="ns", utc=True),
    }


def _rank(counts: np.ndarray) -> np.ndarray:
    """1 = most events; ties keep index order."""
    rank = np.empty(len(counts), dtype=np.int32)
    rank[np.argsort(-counts, kind="stable")] = np.arange(1, len(counts) + 1, dtype=np.int32)
    return rank


def _top_category(train: _Encoded, item_category: pd.Series, n_users: int) -> np.ndarray:
    """Each user's most frequent item category in train (ties: alphabetical)."""
    codes, names = pd.factorize(item_category, sort=True)
    width = max(len(names), 1)
    event_codes = codes[train.items]
    known = event_codes >= 0
    keys = train.users[known].astype(np.int64) * width + event_codes[known]
    pairs, counts = np.unique(keys, return_counts=True)
    users, categories = pairs // width, pairs % width
    order = np.lexsort((categories, -counts, users))  # per user: most events, then name
    first = order[np.diff(users[order], prepend=-1) != 0]
    top = np.full(n_users, None, dtype=object)
    top[users[first]] = np.asarray(names, dtype=object)[categories[first]]
    return top


def _user_stats(
    train: _Encoded,
    user_ids: pd.Index,
    users: pd.DataFrame,
    item_category: pd.Series,
    pairs: sp.csr_matrix,
) -> pd.DataFrame:
    stats = _group_stats(train.users, len(user_ids), train)
    region = users.drop_duplicates("user_id").set_index("user_id")["region"]
    return pd.DataFrame(
        {
            "user_idx": np.arange(len(user_ids), dtype=np.int32),
            "user_id": user_ids,
            "n_interactions": stats["n_interactions"],
            "n_ratings": stats["n_ratings"],
            "mean_rating": stats["mean_rating"],
            "last_timestamp": stats["last_timestamp"],
            "n_items": pairs.getnnz(axis=1),
            "activity_rank": _rank(stats["n_interactions"]),
            "top_category": _top_category(train, item_category, len(user_ids)),
            "region": region.reindex(user_ids).to_numpy(),
        }
    )


def _item_stats(train: _Encoded, item_index: pd.DataFrame, pairs: sp.csr_matrix) -> pd.DataFrame:
    stats = _group_stats(train.items, len(item_index), train)
    return pd.DataFrame(
        {
            "item_idx": item_index["item_idx"],
            "item_id": item_index["item_id"],
            "n_interactions": stats["n_interactions"],
            "n_ratings": stats["n_ratings"],
            "mean_rating": stats["mean_rating"],
            "last_timestamp": stats["last_timestamp"],
            "n_users": pairs.getnnz(axis=0),
            "popularity_rank": _rank(stats["n_interactions"]),
            "category": item_index["category"],
            "price": item_index["price"],
        }
    )


def _item_index(item_ids: pd.Index, items: pd.DataFrame) -> pd.DataFrame:
    catalog = items.drop_duplicates("item_id").set_index("item_id")
    return pd.DataFrame(
        {
            "item_id": item_ids,
            "item_idx": np.arange(len(item_ids), dtype=np.int32),
            "category": catalog["category"].reindex(item_ids).to_numpy(),
            "price": catalog["price"].reindex(item_ids).to_numpy(),
        }
    )


@dataclass(frozen=True)
class _Holdout:
    """The held-out users' artifacts: ids by history row, history, its ratings, targets."""

    user_ids: pd.Index
    history: sp.csr_matrix
    ratings: pd.DataFrame
    positives: pd.DataFrame
    fold_in_rows_unknown_item: int
    test_rows_unknown_item: int


def _holdout(
    fold_in: pd.DataFrame,
    test: pd.DataFrame,
    user_ids: pd.Index,
    item_ids: pd.Index,
    config: Config,
) -> _Holdout:
    """Index the fold-in users who have no train event by history row, and build their
    history (weighed like train_implicit) and their test positives from ``test``."""
    fold_ids = _sorted_ids(fold_in["user_id"])
    holdout_ids = fold_ids[~fold_ids.isin(user_ids)]
    history_events = _encode(fold_in, holdout_ids, item_ids)
    unknown_item = (history_events.users >= 0) & (history_events.items < 0)
    history_events = _subset(history_events, (history_events.users >= 0) & ~unknown_item)
    shape = (len(holdout_ids), len(item_ids))
    history = _matrix(history_events, _weights(history_events, config), shape)
    targets = _encode(test, holdout_ids, item_ids)
    unknown_target_item = (targets.users >= 0) & (targets.items < 0)
    targets = _subset(targets, (targets.users >= 0) & ~unknown_target_item)
    return _Holdout(
        user_ids=holdout_ids,
        history=history,
        ratings=_ratings(history_events),
        positives=_test_positives(targets, history, config),
        fold_in_rows_unknown_item=int(unknown_item.sum()),
        test_rows_unknown_item=int(unknown_target_item.sum()),
    )


def run(ctx: TaskContext[Config]) -> TaskResult:
    """Index users/items and write the model-ready matrices and statistics."""
    config = ctx.config
    train_frame = _read_split(ctx.input(TRAIN))
    test_frame = _read_split(ctx.input(TEST))
    split = split_of(ctx.input(TEST))
    fold_in_frame = (
        _read_split(ctx.input(FOLD_IN)) if ctx.has_input(FOLD_IN) else train_frame.iloc[:0]
    )
    ctx.logger.info(
        "features started",
        extra={
            "fields": {
                "train_rows": len(train_frame),
                "test_rows": len(test_frame),
                "fold_in_rows": len(fold_in_frame),
            }
        },
    )
    if train_frame.empty:
        raise DataValidationError(
            "the train split is empty; there is nothing to index",
            hint="check the preparation task's split settings",
        )
    user_ids, item_ids = _sorted_ids(train_frame["user_id"]), _sorted_ids(train_frame["item_id"])
    shape = (len(user_ids), len(item_ids))
    train = _encode(train_frame, user_ids, item_ids)
    test_all = _encode(test_frame, user_ids, item_ids)
    del train_frame
    unknown_user, unknown_item = test_all.users < 0, test_all.items < 0
    test = _subset(test_all, ~(unknown_user | unknown_item))

    weights = _weights(train, config)
    implicit = _matrix(train, weights, shape)
    holdout = _holdout(fold_in_frame, test_frame, user_ids, item_ids, config)
    held_out_user = test_frame["user_id"].isin(holdout.user_ids).to_numpy()
    del test_frame, fold_in_frame
    pairs = _matrix(train, np.ones(len(train.users), np.float32), shape)
    items = pd.read_parquet(ctx.input(ITEMS))
    users = pd.read_parquet(ctx.input(USERS))
    item_index = _item_index(item_ids, items)
    frames = {
        "user_index": (
            pd.DataFrame({"user_id": user_ids, "user_idx": np.arange(shape[0], dtype=np.int32)}),
            USER_INDEX_SCHEMA,
        ),
        "item_index": (item_index, ITEM_INDEX_SCHEMA),
        "train_ratings": (_ratings(train), RATINGS_SCHEMA),
        "test_ratings": (_ratings(test), RATINGS_SCHEMA),
        "test_interactions": (_test_positives(test, implicit, config), PAIRS_SCHEMA),
        "user_stats": (
            _user_stats(train, user_ids, users, item_index["category"], pairs),
            USER_STATS_SCHEMA,
        ),
        "item_stats": (_item_stats(train, item_index, pairs), ITEM_STATS_SCHEMA),
        "holdout_user_index": (
            pd.DataFrame(
                {
                    "user_id": holdout.user_ids,
                    "history_row": np.arange(len(holdout.user_ids), dtype=np.int32),
                }
            ),
            HOLDOUT_INDEX_SCHEMA,
        ),
        "holdout_history_ratings": (holdout.ratings, RATINGS_SCHEMA),
        "holdout_test_interactions": (holdout.positives, PAIRS_SCHEMA),
        "train_events": (_train_events(train, weights, config), EVENTS_SCHEMA),
    }
    outputs = {
        name: write_frame(
            ctx.output_path(f"{name}.parquet"),
            frame,
            schema,
            split=split if name in SPLIT_TABLES else None,
        )
        for name, (frame, schema) in frames.items()
    }
    outputs["train_implicit"] = save_npz(ctx.output_path("train_implicit.npz"), implicit)
    outputs["holdout_history"] = save_npz(ctx.output_path("holdout_history.npz"), holdout.history)
    metrics = {
        "n_users": shape[0],
        "n_items": shape[1],
        "nnz": int(implicit.nnz),
        "density": implicit.nnz / (shape[0] * shape[1]),
        "train_ratings": len(frames["train_ratings"][0]),
        "test_ratings": len(frames["test_ratings"][0]),
        "test_interactions": len(frames["test_interactions"][0]),
        "test_rows_unknown_user": int((unknown_user & ~held_out_user).sum()),
        "test_rows_unknown_item": int((unknown_item & ~unknown_user).sum())
        + holdout.test_rows_unknown_item,
        "holdout_users": len(holdout.user_ids),
        "holdout_history_nnz": int(holdout.history.nnz),
        "holdout_test_interactions": len(holdout.positives),
        "fold_in_rows_unknown_item": holdout.fold_in_rows_unknown_item,
    }
    ctx.logger.info("features finished", extra={"fields": metrics})
    return TaskResult(outputs=outputs, metrics=metrics)
