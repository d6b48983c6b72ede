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

Engines: this module is the ``pandas`` reference. With ``local`` (DuckDB) or ``spark`` (Spark
SQL) the index maps, encoded events and their weights, ratings, positive pairs and
statistics are the SQL of ``recomart_pipeline.engines.features``; the float sums (the
matrices, ``mean_rating``) stay numpy/scipy here, fed from the engine's Arrow in row order,
so every output is byte-identical to the reference's (``recomart_pipeline_tests/engines``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.contract.task import TaskContext, TaskResult
from recomart_pipeline.engines.features import FeatureTables, Inputs, WeightRules, readable
from recomart_pipeline.ml.keys import sorted_unique
from recomart_pipeline.tasks._engines import SQL_ENGINES, engine_for, sql_session
from recomart_pipeline.tasks._tables import (
    ROW_GROUP_ROWS,
    TIMESTAMP,
    ParquetSink,
    frame_to_table,
    read_categorical,
    save_npz,
    split_of,
    with_split,
    write_parquet,
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


def _summed(
    users: np.ndarray, items: np.ndarray, values: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """CSR with duplicate pairs summed in row order (the sums' bits depend on it): one entry
    per distinct pair, zero sums included."""
    matrix = sp.csr_matrix((values, (users, items)), shape=shape, dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


def _drop_zeros(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def _matrix(
    users: np.ndarray, items: np.ndarray, values: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """CSR with duplicate pairs summed, zeros dropped and sorted indices."""
    return _drop_zeros(_summed(users, items, values, shape))


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
    keys = sorted_unique(_pair_keys(test.users[positive], test.items[positive], implicit.shape[1]))
    return _unseen(keys, implicit, config)


def _unseen(keys: np.ndarray, implicit: sp.csr_matrix, config: Config) -> pd.DataFrame:
    """Positive pairs (sorted unique keys) as a frame, without those ``implicit`` holds if
    ``exclude_seen_in_train`` (seen = a non-zero confidence)."""
    n_items = implicit.shape[1]
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
    n_interactions = np.bincount(keys, minlength=size)
    last = pd.Series(encoded.timestamps).groupby(keys).max().reindex(range(size))
    return {
        "n_interactions": n_interactions,
        "n_ratings": n_ratings,
        "mean_rating": _mean_rating(keys[rated], encoded.ratings[rated], n_ratings),
        "last_timestamp": pd.to_datetime(last.to_numpy(), unit="ns", utc=True),
    }


def _mean_rating(keys: np.ndarray, ratings: np.ndarray, n_ratings: np.ndarray) -> np.ndarray:
    """Mean rating per key (NaN: none): float32 ratings summed in float64 in row order."""
    rating_sum = np.bincount(keys, weights=ratings, minlength=len(n_ratings))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean: np.ndarray = np.where(n_ratings > 0, rating_sum / n_ratings, np.nan).astype(
            np.float32
        )
    return mean


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
    history = _matrix(
        history_events.users, history_events.items, _weights(history_events, config), shape
    )
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


Table: TypeAlias = pd.DataFrame | pa.Table


@dataclass(frozen=True)
class _Features:
    """What a build hands to ``run``: tables to write (pandas frames from the reference,
    Arrow from an engine), outputs it wrote itself, the two matrices, the dropped rows."""

    tables: dict[str, Table]
    written: dict[str, Path]
    implicit: sp.csr_matrix
    history: sp.csr_matrix
    test_rows_unknown_user: int
    test_rows_unknown_item: int
    fold_in_rows_unknown_item: int


SCHEMAS: dict[str, pa.Schema] = {
    "user_index": USER_INDEX_SCHEMA,
    "item_index": ITEM_INDEX_SCHEMA,
    "train_ratings": RATINGS_SCHEMA,
    "test_ratings": RATINGS_SCHEMA,
    "test_interactions": PAIRS_SCHEMA,
    "user_stats": USER_STATS_SCHEMA,
    "item_stats": ITEM_STATS_SCHEMA,
    "holdout_user_index": HOLDOUT_INDEX_SCHEMA,
    "holdout_history_ratings": RATINGS_SCHEMA,
    "holdout_test_interactions": PAIRS_SCHEMA,
    "train_events": EVENTS_SCHEMA,
}


def _empty_train() -> DataValidationError:
    return DataValidationError(
        "the train split is empty; there is nothing to index",
        hint="check the preparation task's split settings",
    )


def _log_started(ctx: TaskContext[Config], train: int, test: int, fold_in: int) -> None:
    ctx.logger.info(
        "features started",
        extra={"fields": {"train_rows": train, "test_rows": test, "fold_in_rows": fold_in}},
    )


def _pandas_features(ctx: TaskContext[Config]) -> _Features:
    """The reference: pandas and numpy over the whole splits in memory."""
    config = ctx.config
    train_frame = _read_split(ctx.input(TRAIN))
    test_frame = _read_split(ctx.input(TEST))
    fold_in_frame = (
        _read_split(ctx.input(FOLD_IN)) if ctx.has_input(FOLD_IN) else train_frame.iloc[:0]
    )
    _log_started(ctx, len(train_frame), len(test_frame), len(fold_in_frame))
    if train_frame.empty:
        raise _empty_train()
    user_ids, item_ids = _sorted_ids(train_frame["user_id"]), _sorted_ids(train_frame["item_id"])
    shape = (len(user_ids), len(item_ids))
    train = _encode(train_frame, user_ids, item_ids)
    test_all = _encode(test_frame, user_ids, item_ids)
    del train_frame
    unknown_user, unknown_item = test_all.users < 0, test_all.items < 0
    test = _subset(test_all, ~(unknown_user | unknown_item))

    weights = _weights(train, config)
    implicit = _matrix(train.users, train.items, weights, shape)
    holdout = _holdout(fold_in_frame, test_frame, user_ids, item_ids, config)
    held_out_user = test_frame["user_id"].isin(holdout.user_ids).to_numpy()
    del test_frame, fold_in_frame
    pairs = _matrix(train.users, train.items, np.ones(len(train.users), np.float32), shape)
    items = pd.read_parquet(ctx.input(ITEMS))
    users = pd.read_parquet(ctx.input(USERS))
    item_index = _item_index(item_ids, items)
    tables: dict[str, Table] = {
        "user_index": pd.DataFrame(
            {"user_id": user_ids, "user_idx": np.arange(shape[0], dtype=np.int32)}
        ),
        "item_index": item_index,
        "train_ratings": _ratings(train),
        "test_ratings": _ratings(test),
        "test_interactions": _test_positives(test, implicit, config),
        "user_stats": _user_stats(train, user_ids, users, item_index["category"], pairs),
        "item_stats": _item_stats(train, item_index, pairs),
        "holdout_user_index": pd.DataFrame(
            {
                "user_id": holdout.user_ids,
                "history_row": np.arange(len(holdout.user_ids), dtype=np.int32),
            }
        ),
        "holdout_history_ratings": holdout.ratings,
        "holdout_test_interactions": holdout.positives,
        "train_events": _train_events(train, weights, config),
    }
    return _Features(
        tables=tables,
        written={},
        implicit=implicit,
        history=holdout.history,
        test_rows_unknown_user=int((unknown_user & ~held_out_user).sum()),
        test_rows_unknown_item=int((unknown_item & ~unknown_user).sum())
        + holdout.test_rows_unknown_item,
        fold_in_rows_unknown_item=holdout.fold_in_rows_unknown_item,
    )


def _nan_to_null(table: pa.Table) -> pa.Table:
    """Float NaN as null, as the reference's frames are written (pandas: NaN is missing)."""
    for position, field in enumerate(table.schema):
        if pa.types.is_floating(field.type):
            column = table.column(position)
            table = table.set_column(
                position, field, pc.if_else(pc.is_nan(column), pa.scalar(None, field.type), column)
            )
    return table


_EVENT_ARRAYS = {
    "user_idx": np.int32,
    "item_idx": np.int32,
    "weight": np.float32,
    "rating": np.float32,
}


@dataclass(frozen=True)
class _Events:
    """Encoded events on the driver, in row order, for the float sums (see the docstring)."""

    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    ratings: np.ndarray  # NaN: not a rating event

    @classmethod
    def collect(cls, batches: Iterable[pa.RecordBatch], sink: ParquetSink | None) -> _Events:
        """The arrays of ``batches`` (an engine's events), each written to ``sink`` too."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in _EVENT_ARRAYS}
        for batch in batches:
            if sink is not None:
                table = pa.Table.from_batches([batch])
                position = table.schema.get_field_index("timestamp")
                table = table.set_column(
                    position, "timestamp", table["timestamp"].cast(pa.int64()).cast(TIMESTAMP)
                )
                sink.write(_nan_to_null(table.select(EVENTS_SCHEMA.names).cast(EVENTS_SCHEMA)))
            for name, arrays in parts.items():
                values = batch[name].to_numpy(zero_copy_only=False)  # null: NaN
                arrays.append(values.astype(_EVENT_ARRAYS[name], copy=False))
        joined = {
            name: np.concatenate(arrays) if arrays else np.empty(0, _EVENT_ARRAYS[name])
            for name, arrays in parts.items()
        }
        return cls(joined["user_idx"], joined["item_idx"], joined["weight"], joined["rating"])

    def matrix(self, shape: tuple[int, int]) -> sp.csr_matrix:
        return _matrix(self.users, self.items, self.weights, shape)


def _completed(
    stats: pa.Table, keys: np.ndarray, events: _Events, partners: tuple[str, np.ndarray]
) -> pa.Table:
    """An engine's statistics with what numpy computes: ``mean_rating`` (a float sum, in
    row order) and the distinct partners (``partners``: the summed matrix's pairs per row
    or column, zero sums included); ``last_timestamp`` typed."""
    n_ratings = stats["n_ratings"].to_numpy().astype(np.int64)
    rated = ~np.isnan(events.ratings)
    mean = _mean_rating(keys[rated], events.ratings[rated], n_ratings)
    name, counts = partners
    return (
        stats.append_column("mean_rating", pa.array(mean, from_pandas=True))
        .append_column("last_timestamp", stats["last_ns"].cast(pa.int64()).cast(TIMESTAMP))
        .append_column(name, pa.array(counts.astype(np.int64)))
    )


def _positives(pairs: pa.Table, matrix: sp.csr_matrix, config: Config) -> pd.DataFrame:
    users = pairs["user_idx"].to_numpy().astype(np.int32)
    items = pairs["item_idx"].to_numpy().astype(np.int32)
    return _unseen(_pair_keys(users, items, matrix.shape[1]), matrix, config)


def _sql_features(ctx: TaskContext[Config], engine: str, split: dict[str, Any] | None) -> _Features:
    """An engine's build: relational steps in SQL (``engines.features``), float sums here.

    ``train_events`` streams from the engine into its file; the same batches give the
    arrays the matrix and the mean ratings are summed from, in row order.
    """
    config = ctx.config
    inputs = Inputs(
        train=ctx.input(TRAIN),
        test=ctx.input(TEST),
        fold_in=ctx.input(FOLD_IN) if ctx.has_input(FOLD_IN) else None,
        items=ctx.input(ITEMS),
        users=ctx.input(USERS),
    )
    rules = WeightRules(
        event_weights=dict(config.event_weights),
        positive_rating_threshold=config.positive_rating_threshold,
        low_rating_weight=config.low_rating_weight,
        positive_event_types=tuple(config.positive_event_types),
    )
    with sql_session(ctx, engine) as session, FeatureTables(session, inputs, rules) as engine_run:
        counts = engine_run.counts()
        _log_started(ctx, counts["train_rows"], counts["test_rows"], counts["fold_in_rows"])
        if counts["train_rows"] == 0:
            raise _empty_train()
        user_index, item_index = engine_run.user_index(), engine_run.item_index()
        shape = (user_index.num_rows, item_index.num_rows)
        events_path = ctx.output_path("train_events.parquet")
        with ParquetSink(events_path, with_split(EVENTS_SCHEMA, split)) as sink:
            train = _Events.collect(engine_run.train_events(ROW_GROUP_ROWS), sink)
        summed = _summed(train.users, train.items, train.weights, shape)
        n_items, n_users = summed.getnnz(axis=1), summed.getnnz(axis=0)  # before zero sums go
        implicit = _drop_zeros(summed)
        holdout_index = engine_run.holdout_index()
        history = _Events.collect(engine_run.history_events(ROW_GROUP_ROWS), None).matrix(
            (holdout_index.num_rows, shape[1])
        )
        tables: dict[str, Table] = {
            "user_index": user_index,
            "item_index": item_index,
            "train_ratings": engine_run.ratings("train"),
            "test_ratings": engine_run.ratings("test"),
            "test_interactions": _positives(engine_run.positive_pairs("test"), implicit, config),
            "user_stats": _completed(
                engine_run.user_stats(), train.users, train, ("n_items", n_items)
            ),
            "item_stats": _completed(
                engine_run.item_stats(), train.items, train, ("n_users", n_users)
            ),
            "holdout_user_index": holdout_index,
            "holdout_history_ratings": engine_run.ratings("holdout"),
            "holdout_test_interactions": _positives(
                engine_run.positive_pairs("holdout"), history, config
            ),
        }
    return _Features(
        tables=tables,
        written={"train_events": events_path},
        implicit=implicit,
        history=history,
        test_rows_unknown_user=counts["unknown_user"],
        test_rows_unknown_item=counts["unknown_item"] + counts["holdout_unknown_item"],
        fold_in_rows_unknown_item=counts["fold_in_unknown_item"],
    )


def _write(path: Path, data: Table, schema: pa.Schema, split: dict[str, Any] | None) -> Path:
    """Write a reference frame or an engine's Arrow table exactly alike."""
    if isinstance(data, pd.DataFrame):
        table = frame_to_table(data, schema)
    else:
        table = _nan_to_null(data.select(schema.names).cast(schema))
    return write_parquet(
        path, table.replace_schema_metadata(with_split(table.schema, split).metadata)
    )


def _splits(ctx: TaskContext[Config]) -> list[Path]:
    """The split files the SQL engines must be able to read as written."""
    return [
        ctx.input(TRAIN),
        ctx.input(TEST),
        *([ctx.input(FOLD_IN)] if ctx.has_input(FOLD_IN) else []),
    ]


def run(ctx: TaskContext[Config]) -> TaskResult:
    """Index users/items and write the model-ready matrices and statistics."""
    split = split_of(ctx.input(TEST))
    engine = engine_for(
        ctx,
        lambda: all(readable(path) for path in _splits(ctx)),
        "the splits are not in the typed layout",
    )
    built = _sql_features(ctx, engine, split) if engine in SQL_ENGINES else _pandas_features(ctx)
    outputs = dict(built.written)
    for name, data in built.tables.items():
        outputs[name] = _write(
            ctx.output_path(f"{name}.parquet"),
            data,
            SCHEMAS[name],
            split if name in SPLIT_TABLES else None,
        )
    outputs = {name: outputs[name] for name in SCHEMAS}  # the reference's order
    implicit, history = built.implicit, built.history
    outputs["train_implicit"] = save_npz(ctx.output_path("train_implicit.npz"), implicit)
    outputs["holdout_history"] = save_npz(ctx.output_path("holdout_history.npz"), history)
    shape = implicit.shape
    metrics = {
        "n_users": shape[0],
        "n_items": shape[1],
        "nnz": int(implicit.nnz),
        "density": implicit.nnz / (shape[0] * shape[1]),
        "train_ratings": len(built.tables["train_ratings"]),
        "test_ratings": len(built.tables["test_ratings"]),
        "test_interactions": len(built.tables["test_interactions"]),
        "test_rows_unknown_user": built.test_rows_unknown_user,
        "test_rows_unknown_item": built.test_rows_unknown_item,
        "holdout_users": history.shape[0],
        "holdout_history_nnz": int(history.nnz),
        "holdout_test_interactions": len(built.tables["holdout_test_interactions"]),
        "fold_in_rows_unknown_item": built.fold_in_rows_unknown_item,
    }
    ctx.logger.info(f"features built on the {engine} engine")
    ctx.logger.info("features finished", extra={"fields": metrics})
    # The engine that built them: checkpoint metadata (not a metric: metrics stay comparable).
    return TaskResult(outputs=outputs, metrics=metrics, metadata={"engine": engine})
