"""Preparation ("clean"): de-duplicate, enforce types, filter sparse users/items, split.

Validation already quarantined broken rows; this task makes the data model-ready. It drops
rows that are identical once typed (``4`` and ``4.0`` are the same rating), drops any null
in a required column (so it also works behind a custom validation task), optionally keeps
only the k-core (every user and item with at least ``min_*_interactions`` events, repeated
until stable) and splits train/test by the configured protocol:

- ``temporal_global`` (old name ``time_cutoff``): one global cut-off time, the
  ``1 - test_fraction`` quantile of the timestamps (or ``split.cutoff``). Every train event is
  strictly earlier than the cut-off and every test event at or after it, so no model ever
  trains on the future; users who only appear after the cut-off cannot be evaluated.
- ``temporal_per_user`` (old name ``last_n_per_user``): each user's last ``n`` events, or last
  ``per_user_fraction`` of them, are test (users with too few events stay wholly in train);
  per user, train never follows test in time, and every user can be evaluated.
- ``random``: a seeded random ``test_fraction`` of events; leaks time, for rating-prediction
  experiments only.
- ``user_holdout``: a seeded random ``test_fraction`` of the *users* (at least one) is held
  out whole, none of their events in train ("strong generalization"). Each held-out user's
  earliest ``fold_in_fraction`` of events (by time) is their *fold-in* history, written to
  ``fold_in``: the models are given it at scoring time only and never train on it. The rest
  (at least one event) are the user's test events. It measures cold start: how well a model
  ranks for a user it has never seen, from what that user has done so far.

A split that leaves fewer than ``min_eval_users`` users on both sides (with user_holdout: with
both a fold-in history and test events) fails here, before any model is trained, naming the
other protocols. Ties in time keep the input order, so the
output is deterministic.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
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
from recomart_pipeline.tasks.specs.tables import WEIGHT

INTERACTIONS = TYPED_SCHEMAS["interactions"]
REQUIRED = ["user_id", "item_id", "event_type", "timestamp"]
CATEGORICAL = ["user_id", "item_id", "event_type"]
MAX_KCORE_ROUNDS = 100


def _load(path: Path) -> pd.DataFrame:
    """Typed interactions with categorical ids, which keep 20M-row frames small."""
    found = pq.read_schema(path).names
    missing = [c for c in INTERACTIONS.names if c not in found and c != WEIGHT]
    if missing:
        raise SchemaError(
            f"interactions input {path} lacks column(s) {missing} (it has {found})",
            hint="preparation reads the typed output of the validation task",
        )
    table = read_categorical(path, CATEGORICAL)
    if WEIGHT not in found:  # validated before weights existed: every row is one event
        table = table.append_column(WEIGHT, pa.nulls(table.num_rows, pa.float32()))
    frame = table.select(INTERACTIONS.names).to_pandas()
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


def _last_per_user(frame: pd.DataFrame, split: SplitConfig) -> np.ndarray:
    """Each user's last ``n`` events, or last ``per_user_fraction`` of them (at least one;
    frame is time-sorted), for users who keep at least one event in train."""
    users = frame["user_id"].cat.codes.to_numpy()
    rank_from_end = frame.groupby(users, sort=False).cumcount(ascending=False).to_numpy()
    counts = np.bincount(users)[users]
    if split.per_user_fraction is None:
        held_out = np.full(len(frame), split.n)
    else:
        held_out = np.maximum(1, np.floor(counts * split.per_user_fraction)).astype(np.int64)
    return (rank_from_end < held_out) & (counts > held_out)


def _random(frame: pd.DataFrame, split: SplitConfig) -> np.ndarray:
    return np.random.default_rng(split.seed).random(len(frame)) < split.test_fraction


def _user_holdout(frame: pd.DataFrame, split: SplitConfig) -> np.ndarray:
    """Every event of a seeded ``test_fraction`` of the users (at least one, and never all).
    Users are drawn from their sorted ids, so the choice does not depend on row order."""
    users = frame["user_id"]
    present = np.sort(users.unique().astype(str))
    count = min(max(1, round(present.size * split.test_fraction)), present.size - 1)
    held = np.random.default_rng(split.seed).choice(present, max(count, 0), replace=False)
    mask: np.ndarray = users.astype(str).isin(held).to_numpy()
    return mask


def _fold_in(frame: pd.DataFrame, held: np.ndarray, split: SplitConfig) -> np.ndarray:
    """Each held-out user's earliest ``fold_in_fraction`` of events (frame is time-sorted):
    at least one, and all but at least one when the user has two or more."""
    users = frame["user_id"].cat.codes.to_numpy()[held]
    rank = frame[held].groupby(users, sort=False).cumcount().to_numpy()
    counts = np.bincount(users)[users]
    # round first: 10 x 0.8 must give 8, not 9 by a float's last bit
    wanted = np.ceil(np.round(counts * split.fold_in_fraction, 9)).astype(np.int64)
    fold_in = np.zeros(len(frame), dtype=bool)
    fold_in[held] = rank < np.maximum(1, np.minimum(wanted, counts - 1))
    return fold_in


def _split(
    frame: pd.DataFrame, split: SplitConfig
) -> tuple[np.ndarray, np.ndarray, pd.Timestamp | None]:
    """(test rows, fold-in rows, cut-off); only user_holdout has fold-in rows."""
    none = np.zeros(len(frame), dtype=bool)
    if split.protocol == "temporal_global":
        is_test, cutoff = _time_cutoff(frame, split)
        return is_test, none, cutoff
    if split.protocol == "temporal_per_user":
        return _last_per_user(frame, split), none, None
    if split.protocol == "user_holdout":
        held = _user_holdout(frame, split)
        fold_in = _fold_in(frame, held, split)
        return held & ~fold_in, fold_in, None
    return _random(frame, split), none, None


def _split_record(split: SplitConfig) -> dict[str, Any]:
    """What evaluation and the report say about the protocol (current names, JSON values)."""
    return {**split.model_dump(mode="json", exclude={"method"}), "protocol": split.protocol}


def _eval_users(
    train: pd.DataFrame, test: pd.DataFrame, fold_in: pd.DataFrame
) -> tuple[int, float]:
    """Users with test events whom a model can be scored for (they have train events, or a
    fold-in history), and the share of test events whose user has neither (they cannot be
    scored)."""
    scorable = set(train["user_id"].unique()) | set(fold_in["user_id"].unique())
    known = test["user_id"].isin(scorable)
    return int(test.loc[known, "user_id"].nunique()), float(1 - known.mean()) if len(test) else 0.0


def _require_eval_users(eval_users: int, split: SplitConfig) -> None:
    if eval_users >= split.min_eval_users:
        return
    others = [p for p in ("temporal_per_user", "random", "temporal_global") if p != split.protocol]
    who = (
        "held-out users with both a fold-in history and test events"
        if split.protocol == "user_holdout"
        else "users with events in both train and test"
    )
    raise DataValidationError(
        f"the {split.protocol} split leaves {eval_users} {who}, fewer than min_eval_users "
        f"({split.min_eval_users}): metrics on so few users are noise",
        hint=f"set tasks.preparation.config.split.method to {' or '.join(others)} "
        "(temporal_per_user keeps every user with two or more events), or lower "
        "tasks.preparation.config.split.min_eval_users",
    )


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
    is_test, is_fold_in, cutoff = _split(frame, config.split)
    train, test, fold_in = frame[~(is_test | is_fold_in)], frame[is_test], frame[is_fold_in]
    _require_rows(train, test, config.split)
    eval_users, unknown_share = _eval_users(train, test, fold_in)
    if unknown_share > 0.5:
        ctx.logger.warning(
            f"{unknown_share:.0%} of test events belong to users who have none in train and "
            f"cannot be evaluated ({config.split.protocol} split); temporal_per_user keeps "
            "every user on both sides"
        )
    _require_eval_users(eval_users, config.split)
    outputs = {
        "train": write_frame(ctx.output_path("train.parquet"), train, INTERACTIONS),
        "test": write_frame(
            ctx.output_path("test.parquet"), test, INTERACTIONS, split=_split_record(config.split)
        ),
        "fold_in": write_frame(ctx.output_path("fold_in.parquet"), fold_in, INTERACTIONS),
    }
    for table, declared in (("items", ITEMS), ("users", USERS)):
        outputs[table] = ctx.output_path(f"{table}.parquet")
        shutil.copyfile(ctx.input(declared), outputs[table])

    metrics = {
        "rows_in": rows_in,
        **stats,
        "train_rows": len(train),
        "test_rows": len(test),
        "fold_in_rows": len(fold_in),
        "users": int(frame["user_id"].nunique()),
        "items": int(frame["item_id"].nunique()),
        "eval_users": eval_users,
        "test_rows_unknown_user_share": round(unknown_share, 4),
    }
    metadata = {
        "split_method": config.split.protocol,
        "cutoff": cutoff.isoformat() if cutoff is not None else None,
        "fold_in_fraction": (
            config.split.fold_in_fraction if config.split.protocol == "user_holdout" else None
        ),
        "schema": {field.name: str(field.type) for field in INTERACTIONS},
    }
    ctx.logger.info("preparation finished", extra={"fields": {**metrics, **metadata}})
    return TaskResult(outputs=outputs, metrics=metrics, metadata=metadata)
