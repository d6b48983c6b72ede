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

That is the ``pandas`` engine, the reference. With ``execution.engine: local`` (or ``spark``)
the cleaning and the split run as SQL on DuckDB (or Spark SQL:
``recomart_pipeline.engines.preparation``, one text for both). The arithmetic SQL cannot
reproduce bit for bit — the seeded draws, the held-out users, per-user sizes from a count
times a fraction — is computed here, by the same functions for every engine, and joined in;
the outputs are byte-identical (``recomart_pipeline_tests/engines``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recomart_pipeline.contract.errors import DataValidationError, SchemaError
from recomart_pipeline.contract.files import link_or_copy
from recomart_pipeline.contract.task import TaskContext, TaskResult
from recomart_pipeline.engines.preparation import (
    FOLD_IN,
    TEST,
    TRAIN,
    CleaningRules,
    CountRule,
    InteractionPreparation,
)
from recomart_pipeline.tasks._engines import SQL_ENGINES, engine_for, sql_session
from recomart_pipeline.tasks._tables import (
    ROW_GROUP_ROWS,
    TYPED_SCHEMAS,
    ParquetSink,
    read_categorical,
    with_split,
    write_frame,
)
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
# The random split draws this many numbers at a time (the same stream as one draw of all).
DRAW_BLOCK = 1_000_000


def _check_columns(path: Path) -> None:
    found = pq.read_schema(path).names
    missing = [c for c in INTERACTIONS.names if c not in found and c != WEIGHT]
    if missing:
        raise SchemaError(
            f"interactions input {path} lacks column(s) {missing} (it has {found})",
            hint="preparation reads the typed output of the validation task",
        )


def _load(path: Path) -> pd.DataFrame:
    """Typed interactions with categorical ids, which keep 20M-row frames small."""
    table = read_categorical(path, CATEGORICAL)
    if WEIGHT not in table.schema.names:  # validated before weights: every row is one event
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


def _cutoff_position(rows: int, split: SplitConfig) -> int:
    """Where in time order temporal_global's cut-off lies (when not given)."""
    return min(int(np.floor(rows * (1 - split.test_fraction))), rows - 1)


def _time_cutoff(frame: pd.DataFrame, split: SplitConfig) -> tuple[np.ndarray, pd.Timestamp]:
    """Test = events at or after the cut-off; the cut-off is an actual event time."""
    times = frame["timestamp"]
    if split.cutoff is not None:
        cutoff = pd.Timestamp(split.cutoff)
    else:
        cutoff = times.iloc[_cutoff_position(len(times), split)]  # the frame is time-sorted
    return (times >= cutoff).to_numpy(), cutoff


def _held_out_sizes(counts: np.ndarray, split: SplitConfig) -> np.ndarray:
    """temporal_per_user: how many of a user's latest events are test, from their count."""
    if split.per_user_fraction is None:
        return np.full(len(counts), split.n, dtype=np.int64)
    return np.maximum(1, np.floor(counts * split.per_user_fraction)).astype(np.int64)


def _last_per_user(frame: pd.DataFrame, split: SplitConfig) -> np.ndarray:
    """Each user's last ``n`` events, or last ``per_user_fraction`` of them (at least one;
    frame is time-sorted), for users who keep at least one event in train."""
    users = frame["user_id"].cat.codes.to_numpy()
    rank_from_end = frame.groupby(users, sort=False).cumcount(ascending=False).to_numpy()
    counts = np.bincount(users)[users]
    held_out = _held_out_sizes(counts, split)
    return (rank_from_end < held_out) & (counts > held_out)


def _random_test_positions(rows: int, split: SplitConfig) -> np.ndarray:
    """random: the positions (in time order) of the test events — where the seeded
    generator's draw is below ``test_fraction``. Drawn in blocks, which gives the same
    numbers as one draw of ``rows`` (numpy's stream) in bounded memory."""
    rng = np.random.default_rng(split.seed)
    blocks = [np.zeros(0, dtype=np.int64)]
    for start in range(0, rows, DRAW_BLOCK):
        draws = rng.random(min(DRAW_BLOCK, rows - start))
        blocks.append(np.flatnonzero(draws < split.test_fraction).astype(np.int64) + start)
    return np.concatenate(blocks)


def _random(frame: pd.DataFrame, split: SplitConfig) -> np.ndarray:
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[_random_test_positions(len(frame), split)] = True
    return is_test


def _held_users(present: np.ndarray, split: SplitConfig) -> np.ndarray:
    """user_holdout: a seeded ``test_fraction`` of the distinct user ids ``present`` (at
    least one, and never all), drawn from the sorted ids so the choice does not depend on
    row order."""
    ordered = np.sort(present)
    count = min(max(1, round(ordered.size * split.test_fraction)), ordered.size - 1)
    held: np.ndarray = np.random.default_rng(split.seed).choice(
        ordered, max(count, 0), replace=False
    )
    return held


def _user_holdout(frame: pd.DataFrame, split: SplitConfig) -> np.ndarray:
    """Every event of the held-out users (``_held_users``)."""
    users = frame["user_id"]
    held = _held_users(users.unique().astype(str), split)
    mask: np.ndarray = users.astype(str).isin(held).to_numpy()
    return mask


def _fold_in_sizes(counts: np.ndarray, split: SplitConfig) -> np.ndarray:
    """user_holdout: how many of a held-out user's earliest events are fold-in, from their
    count: at least one, and all but at least one when the user has two or more."""
    # round first: 10 x 0.8 must give 8, not 9 by a float's last bit
    wanted = np.ceil(np.round(counts * split.fold_in_fraction, 9)).astype(np.int64)
    sizes: np.ndarray = np.maximum(1, np.minimum(wanted, counts - 1))
    return sizes


def _fold_in(frame: pd.DataFrame, held: np.ndarray, split: SplitConfig) -> np.ndarray:
    """Each held-out user's earliest ``fold_in_fraction`` of events (frame is time-sorted):
    at least one, and all but at least one when the user has two or more."""
    users = frame["user_id"].cat.codes.to_numpy()[held]
    rank = frame[held].groupby(users, sort=False).cumcount().to_numpy()
    counts = np.bincount(users)[users]
    fold_in = np.zeros(len(frame), dtype=bool)
    fold_in[held] = rank < _fold_in_sizes(counts, split)
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
    return int(test.loc[known, "user_id"].nunique()), _unknown_share(int(known.sum()), len(test))


def _unknown_share(known_rows: int, test_rows: int) -> float:
    """The share of test events whose user cannot be scored (what ``known.mean()`` gave:
    a sum of ones is exact, so the quotient is the same double)."""
    return float(1 - known_rows / test_rows) if test_rows else 0.0


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


def _require_rows(train_rows: int, test_rows: int, split: SplitConfig) -> None:
    for name, rows in (("train", train_rows), ("test", test_rows)):
        if not rows:
            raise DataValidationError(
                f"the {split.method} split left the {name} set empty "
                f"({train_rows} train / {test_rows} test rows)",
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


def _require_some_left(rows_in: int, stats: dict[str, int], rows: int) -> None:
    if not rows:
        raise DataValidationError(
            f"no interactions are left to split ({rows_in} in, {stats})",
            hint="check the validation quarantine, or relax min_user_interactions and "
            "min_item_interactions",
        )


def _require_evaluable(
    ctx: TaskContext[Config], eval_users: int, unknown_share: float, split: SplitConfig
) -> None:
    if unknown_share > 0.5:
        ctx.logger.warning(
            f"{unknown_share:.0%} of test events belong to users who have none in train and "
            f"cannot be evaluated ({split.protocol} split); temporal_per_user keeps "
            "every user on both sides"
        )
    _require_eval_users(eval_users, split)


@dataclass(frozen=True)
class _Prepared:
    """What either engine did: the counts behind the metrics, the cut-off, the files."""

    rows_in: int
    stats: dict[str, int]
    parts: dict[str, int]  # rows of train, test and fold_in
    users: int
    items: int
    eval_users: int
    unknown_share: float
    cutoff: pd.Timestamp | None
    outputs: dict[str, Path]


def _prepare_pandas(ctx: TaskContext[Config], source: Path) -> _Prepared:
    """The reference: the whole table in one pandas frame."""
    config = ctx.config
    frame = _load(source)
    rows_in = len(frame)
    frame, stats = _clean(frame, config)
    _require_some_left(rows_in, stats, len(frame))
    is_test, is_fold_in, cutoff = _split(frame, config.split)
    train, test, fold_in = frame[~(is_test | is_fold_in)], frame[is_test], frame[is_fold_in]
    _require_rows(len(train), len(test), config.split)
    eval_users, unknown_share = _eval_users(train, test, fold_in)
    _require_evaluable(ctx, eval_users, unknown_share, config.split)
    split = _split_record(config.split)
    outputs = {
        name: write_frame(
            ctx.output_path(f"{name}.parquet"),
            part,
            INTERACTIONS,
            split=split if name == "test" else None,
        )
        for name, part in (("train", train), ("test", test), ("fold_in", fold_in))
    }
    return _Prepared(
        rows_in=rows_in,
        stats=stats,
        parts={"train": len(train), "test": len(test), "fold_in": len(fold_in)},
        users=int(frame["user_id"].nunique()),
        items=int(frame["item_id"].nunique()),
        eval_users=eval_users,
        unknown_share=unknown_share,
        cutoff=cutoff,
        outputs=outputs,
    )


def _split_sql(prep: InteractionPreparation, split: SplitConfig) -> pd.Timestamp | None:
    """Assign the parts in SQL; the numbers SQL cannot draw or round like numpy come from
    the reference's own functions, on the distinct users or counts (or the row count)."""

    def counted(rule: Callable[[np.ndarray, SplitConfig], np.ndarray]) -> CountRule:
        return lambda counts: pa.array(rule(counts.to_numpy(), split), pa.int64())

    if split.protocol == "temporal_global":
        if split.cutoff is not None:
            cutoff = pd.Timestamp(split.cutoff)
        else:
            position = _cutoff_position(prep.cleaned.rows, split)
            cutoff = pd.Timestamp(prep.timestamp_at(position), unit="ns", tz="UTC")
        prep.split_by_cutoff(cutoff.value)
        return cutoff
    if split.protocol == "temporal_per_user":
        prep.split_last_per_user(counted(_held_out_sizes))
    elif split.protocol == "user_holdout":
        present = prep.user_ids().to_numpy(zero_copy_only=False).astype(str)
        held = pa.array(_held_users(present, split).tolist(), pa.string())
        prep.split_user_holdout(held, counted(_fold_in_sizes))
    else:
        prep.split_by_positions(pa.array(_random_test_positions(prep.cleaned.rows, split)))
    return None


def _prepare_sql(ctx: TaskContext[Config], source: Path, engine: str) -> _Prepared:
    """The ``local`` and ``spark`` engines: the same steps as SQL
    (``recomart_pipeline.engines.preparation``); the rows stream back in time order into
    the same Parquet writer as the reference's, so the files are byte-identical."""
    config = ctx.config
    rules = CleaningRules(
        min_user_interactions=config.min_user_interactions,
        min_item_interactions=config.min_item_interactions,
        max_kcore_rounds=MAX_KCORE_ROUNDS,
    )
    with (
        sql_session(ctx, engine) as session,
        InteractionPreparation(session, source, rules) as prep,
    ):
        cleaned = prep.cleaned
        stats = {
            "nulls_dropped": cleaned.nulls_dropped,
            "duplicates_dropped": cleaned.duplicates_dropped,
            "kcore_dropped": cleaned.kcore_dropped,
            "kcore_rounds": cleaned.kcore_rounds,
        }
        _require_some_left(cleaned.rows_in, stats, cleaned.rows)
        cutoff = _split_sql(prep, config.split)
        rows = prep.part_rows()
        _require_rows(rows[TRAIN], rows[TEST], config.split)
        eval_users, known = prep.scorable_test()
        unknown_share = _unknown_share(known, rows[TEST])
        _require_evaluable(ctx, eval_users, unknown_share, config.split)
        outputs = {}
        for name, part in (("train", TRAIN), ("test", TEST), ("fold_in", FOLD_IN)):
            split = _split_record(config.split) if name == "test" else None
            outputs[name] = ctx.output_path(f"{name}.parquet")
            with ParquetSink(outputs[name], with_split(INTERACTIONS, split)) as sink:
                for batch in prep.rows(part, ROW_GROUP_ROWS):
                    sink.write(batch)
    return _Prepared(
        rows_in=cleaned.rows_in,
        stats=stats,
        parts={"train": rows[TRAIN], "test": rows[TEST], "fold_in": rows[FOLD_IN]},
        users=cleaned.users,
        items=cleaned.items,
        eval_users=eval_users,
        unknown_share=unknown_share,
        cutoff=cutoff,
        outputs=outputs,
    )


def _typed_layout(path: Path) -> bool:
    """Whether the file has validation's typed layout exactly (weight optional)."""
    schema = pq.read_schema(path)
    for field in INTERACTIONS:
        if field.name not in schema.names:
            if field.name != WEIGHT:
                return False
        elif schema.field(field.name).type != field.type:
            return False
    return True


def run(ctx: TaskContext[Config]) -> TaskResult:
    """Clean the validated interactions and split them into train and test."""
    config = ctx.config
    source = ctx.input(VALID_INTERACTIONS)
    _check_columns(source)
    engine = engine_for(
        ctx, lambda: _typed_layout(source), "interactions are not in the typed layout"
    )
    ctx.logger.info(
        "preparation started", extra={"fields": {"source": str(source), "engine": engine}}
    )
    if engine in SQL_ENGINES:
        prepared = _prepare_sql(ctx, source, engine)
    else:
        prepared = _prepare_pandas(ctx, source)
    outputs = dict(prepared.outputs)
    for table, declared in (("items", ITEMS), ("users", USERS)):
        outputs[table] = ctx.output_path(f"{table}.parquet")
        link_or_copy(ctx.input(declared), outputs[table])

    metrics = {
        "rows_in": prepared.rows_in,
        **prepared.stats,
        "train_rows": prepared.parts["train"],
        "test_rows": prepared.parts["test"],
        "fold_in_rows": prepared.parts["fold_in"],
        "users": prepared.users,
        "items": prepared.items,
        "eval_users": prepared.eval_users,
        "test_rows_unknown_user_share": round(prepared.unknown_share, 4),
    }
    cutoff = prepared.cutoff
    metadata = {
        "split_method": config.split.protocol,
        "cutoff": cutoff.isoformat() if cutoff is not None else None,
        "fold_in_fraction": (
            config.split.fold_in_fraction if config.split.protocol == "user_holdout" else None
        ),
        "schema": {field.name: str(field.type) for field in INTERACTIONS},
        # Which engine ran the rules (not a metric, so the engines' metrics stay comparable).
        "engine": engine,
    }
    ctx.logger.info(f"preparation rules ran on the {engine} engine")
    ctx.logger.info("preparation finished", extra={"fields": {**metrics, **metadata}})
    return TaskResult(outputs=outputs, metrics=metrics, metadata=metadata)
