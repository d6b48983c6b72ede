"""Preparation: cleaning, k-core filtering and leak-free train/test splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.runtime.artifacts import Checkpoint
from recomart_pipeline.tasks._tables import split_of
from recomart_pipeline.tasks.preparation import _fold_in, _user_holdout
from recomart_pipeline.tasks.specs.preparation import SplitConfig
from recomart_pipeline_tests.data.helpers import (
    TaskHarness,
    artifact_hashes,
    events,
    publish_typed,
    sources,
)

ITEMS = pd.DataFrame(
    {"item_id": ["i1", "i2", "i3"], "category": ["a", "b", "b"], "price": 1.0, "title": "t"}
)
USERS = pd.DataFrame(
    {
        "user_id": ["u1", "u2", "u3"],
        "signup_date": pd.Timestamp("2025-01-01", tz="UTC"),
        "region": "north",
    }
)


@pytest.fixture
def validated(harness: TaskHarness, small_dataset: dict[str, Path]) -> Checkpoint:
    """The small generated dataset after ingestion and validation."""
    _, ingested = harness.run("ingestion", sources(small_dataset))
    _, checkpoint = harness.run("validation", {}, {"ingestion": ingested})
    return checkpoint


def _prepare(
    harness: TaskHarness, tmp_path: Path, frame: pd.DataFrame, config: dict[str, Any] | None = None
) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    result, checkpoint = _prepared(harness, tmp_path, frame, config)
    return (
        result,
        pd.read_parquet(checkpoint.path("train")),
        pd.read_parquet(checkpoint.path("test")),
    )


def _prepared(
    harness: TaskHarness, tmp_path: Path, frame: pd.DataFrame, config: dict[str, Any] | None = None
) -> tuple[Any, Checkpoint]:
    upstream = publish_typed(
        harness, tmp_path, "validation", {"interactions": frame, "items": ITEMS, "users": USERS}
    )
    config = dict(config or {})
    # These frames have a handful of users; the evaluation-size guard has its own test.
    config["split"] = {"min_eval_users": 1, **config.get("split", {})}
    return harness.run("preparation", config, {"validation": upstream})


def _split_parts(
    harness: TaskHarness, tmp_path: Path, frame: pd.DataFrame, config: dict[str, Any]
) -> tuple[Any, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(result, train, test, fold_in) of a preparation run."""
    result, checkpoint = _prepared(harness, tmp_path, frame, config)
    parts = [pd.read_parquet(checkpoint.path(name)) for name in ("train", "test", "fold_in")]
    return result, parts[0], parts[1], parts[2]


def test_time_cutoff_puts_every_train_event_before_every_test_event(
    harness: TaskHarness, validated: Checkpoint
) -> None:
    result, checkpoint = harness.run("preparation", {}, {"validation": validated})
    train, test = (
        pd.read_parquet(checkpoint.path("train")),
        pd.read_parquet(checkpoint.path("test")),
    )
    cutoff = pd.Timestamp(result.metadata["cutoff"])
    assert train["timestamp"].max() < cutoff <= test["timestamp"].min()
    assert test["timestamp"].min() == cutoff
    assert len(test) / (len(train) + len(test)) == pytest.approx(0.2, abs=0.01)
    assert result.metrics["rows_in"] == len(train) + len(test)
    for part in (train, test):
        assert part["timestamp"].is_monotonic_increasing
        assert str(part["timestamp"].dtype) == "datetime64[ns, UTC]"
    items = pd.read_parquet(checkpoint.path("items"))
    assert items.equals(pd.read_parquet(validated.path("items")))


def test_explicit_cutoff(harness: TaskHarness, validated: Checkpoint) -> None:
    config = {"split": {"cutoff": "2026-02-01T00:00:00"}}
    result, checkpoint = harness.run("preparation", config, {"validation": validated})
    cutoff = pd.Timestamp("2026-02-01", tz="UTC")
    assert pd.read_parquet(checkpoint.path("train"))["timestamp"].max() < cutoff
    assert pd.read_parquet(checkpoint.path("test"))["timestamp"].min() >= cutoff
    assert result.metadata["cutoff"] == cutoff.isoformat()


def test_last_n_per_user_holds_out_each_users_latest_events(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = [("u1", "i1", "view", None, f"2026-01-0{d}") for d in range(1, 6)]
    rows += [("u2", "i2", "view", None, "2026-01-02"), ("u2", "i3", "view", None, "2026-01-09")]
    rows += [("u3", f"i{k}", "purchase", None, f"2026-01-0{k + 5}") for k in range(1, 4)]
    result, train, test = _prepare(
        harness,
        tmp_path,
        events(rows),
        {"split": {"method": "last_n_per_user", "n": 2, "min_eval_users": 1}},
    )
    assert sorted(test.groupby("user_id").size().items()) == [("u1", 2), ("u3", 2)]
    assert (train["user_id"] == "u2").sum() == 2  # only n events: all stay in train
    for user, held_out in test.groupby("user_id"):
        assert train.loc[train["user_id"] == user, "timestamp"].max() <= held_out["timestamp"].min()
    assert result.metadata["cutoff"] is None
    assert result.metadata["split_method"] == "temporal_per_user"  # the old name's new name


def test_temporal_per_user_can_hold_out_a_share_of_each_users_events(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = [("u1", f"i{d}", "view", None, f"2026-01-{d:02d}") for d in range(1, 11)]
    rows += [("u2", f"i{d}", "view", None, f"2026-01-{d:02d}") for d in range(1, 4)]
    rows += [("u3", "i1", "view", None, "2026-01-05")]
    config = {"split": {"method": "temporal_per_user", "per_user_fraction": 0.3}}
    config["split"]["min_eval_users"] = 2
    result, _, test = _prepare(harness, tmp_path, events(rows), config)
    # 30 % of 10 events = 3; of 3 events at least 1; a single event stays in train
    assert sorted(test.groupby("user_id").size().items()) == [("u1", 3), ("u2", 1)]
    assert set(test["item_id"][test["user_id"] == "u1"]) == {"i8", "i9", "i10"}
    assert result.metrics["eval_users"] == 2


def test_a_split_that_leaves_too_few_evaluation_users_fails_naming_the_protocols(
    harness: TaskHarness, tmp_path: Path
) -> None:
    # Users 1-3 only appear early, users 4-6 only late: a global cut-off scores nobody.
    rows = [(f"u{u}", "i1", "view", None, f"2026-01-0{u}") for u in range(1, 4)]
    rows += [(f"u{u}", "i2", "view", None, f"2026-01-0{u + 3}") for u in range(4, 7)]
    with pytest.raises(DataValidationError) as caught:
        _prepare(harness, tmp_path, events(rows), {"split": {"test_fraction": 0.5}})
    message = str(caught.value)
    assert "leaves 0 users with events in both train and test" in message
    assert "fewer than min_eval_users (1)" in message
    assert "tasks.preparation.config.split.method to temporal_per_user or random" in message


def test_random_split_is_seeded(harness: TaskHarness, validated: Checkpoint) -> None:
    def split(seed: int, run_id: str) -> Checkpoint:
        config = {"split": {"method": "random", "seed": seed}}
        return harness.run("preparation", config, {"validation": validated}, run_id=run_id)[1]

    first, again, other = split(1, "a"), split(1, "b"), split(2, "c")
    assert artifact_hashes(first) == artifact_hashes(again)
    assert artifact_hashes(first)["test"] != artifact_hashes(other)["test"]
    test = pd.read_parquet(first.path("test"))
    assert len(test) / first.metrics["rows_in"] == pytest.approx(0.2, abs=0.03)


def test_k_core_filter_repeats_until_stable(harness: TaskHarness, tmp_path: Path) -> None:
    rows = [
        (u, i, "view", None, f"2026-01-{d:02d}")
        for d, (u, i) in enumerate(
            [("u1", "i1"), ("u1", "i2"), ("u2", "i1"), ("u2", "i2"), ("u3", "i1"), ("u3", "i3")],
            start=1,
        )
    ]
    # i3 has one event; dropping it leaves u3 with one event, which then drops u3 too.
    result, train, test = _prepare(
        harness,
        tmp_path,
        events(rows),
        {"min_user_interactions": 2, "min_item_interactions": 2, "split": {"test_fraction": 0.25}},
    )
    kept = pd.concat([train, test])
    assert set(kept["user_id"]) == {"u1", "u2"} and set(kept["item_id"]) == {"i1", "i2"}
    assert result.metrics["kcore_dropped"] == 2 and result.metrics["kcore_rounds"] == 3


def test_typed_duplicates_and_nulls_are_dropped(harness: TaskHarness, tmp_path: Path) -> None:
    rows = [
        ("u1", "i1", "rating", 4.0, "2026-01-01"),
        ("u1", "i1", "rating", 4.0, "2026-01-01"),
        ("u1", "i2", "view", None, "2026-01-02"),
        ("u1", "i2", "view", None, "2026-01-03"),
        (None, "i2", "view", None, "2026-01-04"),
    ]
    result, train, test = _prepare(
        harness, tmp_path, events(rows), {"split": {"test_fraction": 0.3}}
    )
    assert result.metrics["duplicates_dropped"] == 1 and result.metrics["nulls_dropped"] == 1
    assert len(train) + len(test) == 3


def test_split_that_leaves_a_side_empty_is_an_error(harness: TaskHarness, tmp_path: Path) -> None:
    rows = [("u1", "i1", "view", None, "2026-01-01"), ("u1", "i2", "view", None, "2026-01-02")]
    with pytest.raises(DataValidationError, match="train set empty"):
        _prepare(harness, tmp_path, events(rows), {"split": {"cutoff": "2025-01-01"}})


def test_reruns_are_byte_identical(harness: TaskHarness, validated: Checkpoint) -> None:
    _, first = harness.run("preparation", {}, {"validation": validated}, run_id="first")
    _, second = harness.run("preparation", {}, {"validation": validated}, run_id="second")
    assert artifact_hashes(first) == artifact_hashes(second)


def test_nothing_left_after_filtering_is_an_error(harness: TaskHarness, tmp_path: Path) -> None:
    rows = [("u1", "i1", "view", None, "2026-01-01"), ("u2", "i2", "view", None, "2026-01-02")]
    with pytest.raises(DataValidationError, match="no interactions are left"):
        _prepare(harness, tmp_path, events(rows), {"min_user_interactions": 2})


def test_user_holdout_holds_out_a_seeded_share_of_users_whole() -> None:
    users = [f"u{n:02d}" for n in range(40) for _ in range(3)]
    frame = pd.DataFrame({"user_id": pd.Categorical(users), "item_id": "i1"})
    split = SplitConfig(method="user_holdout", test_fraction=0.25, seed=7)
    held = _user_holdout(frame, split)
    test_users = set(frame.loc[held, "user_id"])
    assert len(test_users) == 10  # a quarter of 40 users
    assert test_users.isdisjoint(frame.loc[~held, "user_id"])  # every event of theirs in test
    # Seeded, and independent of row order: the same users for the same seed.
    shuffled = frame.sample(frac=1, random_state=3)
    assert set(shuffled.loc[_user_holdout(shuffled, split), "user_id"]) == test_users
    other = SplitConfig(method="user_holdout", test_fraction=0.25, seed=8)
    assert set(frame.loc[_user_holdout(frame, other), "user_id"]) != test_users


def test_user_holdout_gives_each_held_out_user_an_earlier_fold_in_history_and_later_targets(
    harness: TaskHarness, tmp_path: Path
) -> None:
    """Strong generalization: a held-out user has no train event; their earliest
    fold_in_fraction of events (by time, whatever the row order) is the fold-in history the
    models get at scoring time, and the later ones are their test events."""
    rows = [
        (f"u{u}", f"i{(u + e) % 7}", "purchase", None, f"2026-01-{e + 1:02d}T0{u % 10}:00:00")
        for u in range(12)
        for e in range(10)
    ]
    frame = events(rows).sample(frac=1, random_state=5)  # time order is the task's job
    split = {"method": "user_holdout", "test_fraction": 0.25, "fold_in_fraction": 0.8}
    result, train, test, fold_in = _split_parts(harness, tmp_path, frame, {"split": split})
    held = set(fold_in["user_id"])
    assert len(held) == 3 and set(test["user_id"]) == held
    assert held.isdisjoint(train["user_id"])
    for user in held:
        history = fold_in[fold_in["user_id"] == user]
        targets = test[test["user_id"] == user]
        assert (len(history), len(targets)) == (8, 2)  # 10 events: 80 % fold-in, exactly
        assert history["timestamp"].max() < targets["timestamp"].min()
    assert result.metrics["eval_users"] == 3
    assert result.metrics["fold_in_rows"] == 24
    assert result.metadata["fold_in_fraction"] == 0.8


@pytest.mark.parametrize(
    ("events_per_user", "fraction", "history"),
    [(1, 0.8, 1), (2, 0.9, 1), (2, 0.1, 1), (3, 0.8, 2), (5, 0.8, 4), (10, 0.8, 8), (10, 0.3, 3)],
)
def test_a_held_out_users_history_is_the_earliest_share_keeping_one_target(
    events_per_user: int, fraction: float, history: int
) -> None:
    """At least one history event; at least one target when there are two or more events;
    a single-event user has a history and nothing to predict (not evaluated)."""
    frame = pd.DataFrame(
        {"user_id": pd.Categorical(["a"] * events_per_user + ["b"]), "item_id": "i1"}
    )
    held = (frame["user_id"] == "a").to_numpy()
    split = SplitConfig(method="user_holdout", fold_in_fraction=fraction)
    fold_in = _fold_in(frame, held, split)
    assert fold_in[:history].all() and not fold_in[history:].any()  # earliest rows, not b


def test_user_holdout_with_too_few_held_out_users_stops_before_training(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = [(f"u{u}", "i1", "view", None, f"2026-01-0{d}") for u in range(1, 8) for d in (1, 2)]
    split = {"method": "user_holdout", "min_eval_users": 5}
    with pytest.raises(DataValidationError) as caught:
        _prepare(harness, tmp_path, events(rows), {"split": split})
    message = str(caught.value)
    assert "leaves 1 held-out users with both a fold-in history and test events" in message
    assert "tasks.preparation.config.split.method to temporal_per_user" in message


def test_protocols_other_than_user_holdout_write_an_empty_fold_in(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = [(f"u{u}", "i1", "view", None, f"2026-01-0{d}") for u in range(1, 4) for d in (1, 2)]
    *_, fold_in = _split_parts(harness, tmp_path, events(rows), {"split": {"method": "random"}})
    assert fold_in.empty


@pytest.mark.parametrize(
    ("split", "protocol"),
    [
        ({}, "temporal_global"),
        ({"method": "last_n_per_user"}, "temporal_per_user"),  # an old name: the current one
        ({"method": "random", "test_fraction": 0.3}, "random"),
    ],
)
def test_the_protocol_travels_with_the_held_out_tables_to_evaluation(
    harness: TaskHarness, validated: Checkpoint, split: dict, protocol: str
) -> None:
    _, prepared = harness.run("preparation", {"split": split}, {"validation": validated})
    _, features = harness.run("features", {}, {"preparation": prepared})
    recorded = split_of(features.path("test_interactions"))
    assert recorded is not None and recorded["protocol"] == protocol
    assert split_of(features.path("test_ratings")) == recorded == split_of(prepared.path("test"))
    assert split_of(features.path("user_index")) is None  # only the held-out tables
    if "test_fraction" in split:
        assert recorded["test_fraction"] == split["test_fraction"]
