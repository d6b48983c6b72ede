"""Preparation ("clean"): de-duplicate, enforce types, filter sparse users/items, split.

Validation already quarantined broken rows; this task makes the data model-ready. It drops
rows that are identical once typed (``4`` and ``4.0`` are the same rating), drops any null
in a required column (so it also works behind a custom validation task), optionally keeps
only the k-core (every user and item with at least ``min_*_interactions`` events, repeated
until stable) and splits train/test:

- ``time_cutoff``: one global cut-off time, the ``1 - test_fraction`` quantile of the
  timestamps (or ``split.cutoff``). Every train event is strictly earlier than the cut-off
  and every test event at or after it, so no model ever trains on the future.
- ``last_n_per_user``: each user's last ``n`` events are test (users with at most ``n``
  events stay wholly in train); per user, train never follows test in time.
- ``random``: a seeded random ``test_fraction`` of events; leaks time, for rating-prediction
  experiments only.

Ties in time keep the input order, so the output is deterministic.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from recomart_pipeline.contract.errors import DataValidationError, SchemaError
from recomart_pipeline.contract.task import TaskContext, TaskResult
from recomart_pipeline.tasks._tables import TYPED_SCHEMAS, read_categorical, write_frame
from recomart_pipeline.tasks.specs.preparation import (
    ITEMS,
    USERS,
    VALID_INTERACTIONS,
    Config,
    SplitConfig,
)

INTERACTIONS = TYPED_SCHEMAS["interactions"]
REQUIRED = ["user_id", "item_id", "event_type", "timestamp"]
CATEGORICAL = ["user_id", "item_id", "event_type"]
MAX_KCORE_ROUNDS = 100


def _load(path: Path) -> pd.DataFrame:
    """Typed interactions with categorical ids, which keep 20M-row frames small."""
    found = pq.read_schema(path).names
    missing = [c for c in INTERACTIONS.names if c not in found]
    if missing:
        raise SchemaError(
            f"interactions input {path} lacks column(s) {missing} (it has {found})",
            hint="preparation reads the typed output of the validation task",
        )
    frame = read_categorical(path, CATEGORICAL).select(INTERACTIONS.names).to_pandas()
    return frame.astype({"timestamp": "datetime64[ns, UTC]", "rating": "float32"})


def _k_core(frame: pd.DataFrame, min_user: int, min_item: int) -> tuple[pd.DataFrame, int]:
    """Drop users/items below their minimum until none is left; returns rounds taken."""
    for round_number in range(1, MAX_KCORE_ROUNDS + 1):
        user_counts = np.bincount(frame["user_id"].cat.codes, minlength=1)
        item_counts = np.bincount(frame["item_id"].cat.codes, minlength=1)
        keep = (user_counts[frame["user_id"].cat.codes] >= min_user) & (
            item_counts[frame["item_id"].cat.codes] >= min_item
        )
        if keep.all():
            return frame, round_number
        frame = frame[keep]
    return frame, MAX_KCORE_ROUNDS


def _time_cutoff(frame: pd.DataFrame, split: SplitConfig) -> tuple[np.ndarray, pd.Timestamp]:
    """Test = events at or after the cut-off; the cut-off is an actual event time."""
    times = frame["timestamp"]
    if split.cutoff is not None:
        cutoff = pd.Timestamp(split.cutoff)
    else:
        position = min(int(np.floor(len(times) * (1 - split.test_fraction))), len(times) - 1)
        cutoff = times.iloc[position]  # the frame is sorted by time
    return (times >= cutoff).to_numpy(), cutoff


def _last_n(frame: pd.DataFrame, n: int) -> np.ndarray:
    """Each user's last ``n`` events (frame is time-sorted), if they have more than ``n``."""
    users = frame["user_id"].cat.codes.to_numpy()
    rank_from_end = frame.groupby(users, sort=False).cumcount(ascending=False).to_numpy()
    counts = np.bincount(users)[users]
    return (rank_from_end < n) & (counts > n)


def _random(frame: pd.DataFrame, split: SplitConfig) -> np.ndarray:
    return np.random.default_rng(split.seed).random(len(frame)) < split.test_fraction


def _split(frame: pd.DataFrame, split: SplitConfig) -> tuple[np.ndarray, pd.Timestamp | None]:
    if split.method == "time_cutoff":
        return _time_cutoff(frame, split)
    if split.method == "last_n_per_user":
        return _last_n(frame, split.n), None
    return _random(frame, split), None


def _require_rows(train: pd.DataFrame, test: pd.DataFrame, split: SplitConfig) -> None:
    for name, part in (("train", train), ("test", test)):
        if part.empty:
            raise DataValidationError(
                f"the {split.method} split left the {name} set empty "
                f"({len(train)} train / {len(test)} test rows)",
                hint="adjust tasks.preparation.config.split (test_fraction, cutoff or n) or "
                "relax min_user_interactions/min_item_interactions",
            )


def _duplicated(frame: pd.DataFrame) -> np.ndarray:
    """Rows equal to an earlier row, first copy kept.

    A 64-bit hash per row finds the few candidate rows cheaply; only those are compared
    exactly, so a hash collision can never drop a distinct row.
    """
    hashes = pd.util.hash_pandas_object(frame, index=False)
    candidates = hashes.duplicated(keep=False).to_numpy()
    duplicated = np.zeros(len(frame), dtype=bool)
    duplicated[candidates] = frame[candidates].duplicated(keep="first").to_numpy()
    return duplicated


def _clean(frame: pd.DataFrame, config: Config) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop nulls, typed duplicates and (optionally) sparse users/items; sort by time."""
    has_null = frame[REQUIRED].isna().any(axis=1)
    frame = frame[~has_null]
    duplicated = _duplicated(frame)
    frame = frame[~duplicated]
    before_kcore = len(frame)
    frame, rounds = _k_core(frame, config.min_user_interactions, config.min_item_interactions)
    stats = {
        "nulls_dropped": int(has_null.sum()),
        "duplicates_dropped": int(duplicated.sum()),
        "kcore_dropped": before_kcore - len(frame),
        "kcore_rounds": rounds,
    }
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True), stats


def run(ctx: TaskContext[Config]) -> TaskResult:
    """Clean the validated interactions and split them into train and test."""
    config = ctx.config
    source = ctx.input(VALID_INTERACTIONS)
    frame = _load(source)
    rows_in = len(frame)
    ctx.logger.info(
        "preparation started", extra={"fields": {"source": str(source), "rows_in": rows_in}}
    )
    frame, stats = _clean(frame, config)
    if frame.empty:
        raise DataValidationError(
            f"no interactions are left to split ({rows_in} in, {stats})",
            hint="check the validation quarantine, or relax min_user_interactions and "
            "min_item_interactions",
        )
    is_test, cutoff = _split(frame, config.split)
    train, test = frame[~is_test], frame[is_test]
    _require_rows(train, test, config.split)
    outputs = {
        "train": write_frame(ctx.output_path("train.parquet"), train, INTERACTIONS),
        "test": write_frame(ctx.output_path("test.parquet"), test, INTERACTIONS),
    }
    for table, declared in (("items", ITEMS), ("users", USERS)):
        outputs[table] = ctx.output_path(f"{table}.parquet")
        shutil.copyfile(ctx.input(declared), outputs[table])

    metrics = {
        "rows_in": rows_in,
        **stats,
        "train_rows": len(train),
        "test_rows": len(test),
        "users": int(frame["user_id"].nunique()),
        "items": int(frame["item_id"].nunique()),
    }
    metadata = {
        "split_method": config.split.method,
        "cutoff": cutoff.isoformat() if cutoff is not None else None,
        "schema": {field.name: str(field.type) for field in INTERACTIONS},
    }
    ctx.logger.info("preparation finished", extra={"fields": {**metrics, **metadata}})
    return TaskResult(outputs=outputs, metrics=metrics, metadata=metadata)
