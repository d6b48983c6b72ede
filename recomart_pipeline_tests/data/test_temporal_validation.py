"""The temporal validation split is the test protocol applied again to the train events.

The reference is the pipeline itself: the preparation task's split of the train events,
then the features task on the two sides, gives exactly the fit data, validation targets and
validation ratings ``ml.holdout`` cuts from the features task's ``train_events``. And no
validation target precedes its user's (temporal_per_user) or the global (temporal_global)
training cut-off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recomart_pipeline.ml.data import load_training_data
from recomart_pipeline.ml.holdout import Holdout, holdout_split, read_train_events
from recomart_pipeline.runtime.artifacts import Checkpoint
from recomart_pipeline.tasks.preparation import _split
from recomart_pipeline.tasks.specs.preparation import SplitConfig
from recomart_pipeline_tests.data.helpers import TaskHarness, publish_typed

EVENT_TYPES = np.array(["view", "add_to_cart", "purchase", "rating"])


def _train_events(seed: int = 0, n: int = 3000) -> pd.DataFrame:
    """Shop-like events: skewed users and items, repeats, ratings, and ties in time."""
    rng = np.random.default_rng(seed)
    users = rng.zipf(1.6, n) % 120
    items = rng.zipf(1.4, n) % 80
    kinds = EVENT_TYPES[rng.choice(4, n, p=[0.55, 0.15, 0.1, 0.2])]
    ratings = np.where(kinds == "rating", rng.integers(1, 6, n), np.nan).astype("float32")
    seconds = np.sort(rng.integers(0, n // 2, n))  # many events share a second
    frame = pd.DataFrame(
        {
            "user_id": [f"u{u:03d}" for u in users],
            "item_id": [f"i{i:03d}" for i in items],
            "event_type": kinds,
            "rating": ratings,
            "timestamp": pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(seconds, unit="s"),
        }
    )
    return frame


def _tables(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    items = sorted(frame["item_id"].unique())
    users = sorted(frame["user_id"].unique())
    return {
        "items": pd.DataFrame({"item_id": items, "category": "c", "price": 1.0, "title": "t"}),
        "users": pd.DataFrame(
            {
                "user_id": users,
                "signup_date": pd.Timestamp("2025-01-01", tz="UTC"),
                "region": "r",
            }
        ),
    }


def _features(
    harness: TaskHarness, tmp_path: Path, train: pd.DataFrame, test: pd.DataFrame, name: str
) -> Checkpoint:
    tables = {"train": train, "test": test, **_tables(pd.concat([train, test]))}
    (tmp_path / name).mkdir()
    prepared = publish_typed(harness, tmp_path / name, "preparation", tables)
    return harness.run("features", {}, {"preparation": prepared}, run_id=name)[1]


def _by_id(checkpoint: Checkpoint, name: str, matrix_or_frame) -> set[tuple]:
    """Rows of a pair table or matrix as (user_id, item_id[, value]) by external ids."""
    users = pd.read_parquet(checkpoint.path("user_index")).set_index("user_idx")["user_id"]
    items = pd.read_parquet(checkpoint.path("item_index")).set_index("item_idx")["item_id"]
    if sp.issparse(matrix_or_frame):
        coo = matrix_or_frame.tocoo()
        rows = zip(coo.row, coo.col, np.round(coo.data, 4), strict=True)
    else:
        frame = matrix_or_frame
        values = frame["rating"] if "rating" in frame else [None] * len(frame)
        rows = zip(frame["user_idx"], frame["item_idx"], values, strict=True)
    return {(users[u], items[i], None if v is None else float(v)) for u, i, v in rows}


def _ratings_frame(holdout_ratings) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_idx": holdout_ratings.users,
            "item_idx": holdout_ratings.items,
            "rating": holdout_ratings.values,
        }
    )


@pytest.fixture
def world(harness: TaskHarness, tmp_path: Path):
    frame = _train_events()
    empty = frame.iloc[:0]
    full = _features(harness, tmp_path, frame, empty, "all")
    train = load_training_data(full.path("train_ratings"), full.path("train_implicit"))
    events = read_train_events(full.path("train_events"))
    return frame, full, train, events


@pytest.mark.parametrize(
    ("method", "split"),
    [
        ("temporal_global", {"method": "temporal_global", "test_fraction": 0.25}),
        ("temporal_per_user", {"method": "temporal_per_user", "per_user_fraction": 0.25}),
    ],
)
def test_the_validation_split_is_the_test_protocol_applied_to_the_train_events(
    world, harness: TaskHarness, tmp_path: Path, method: str, split: dict
):
    frame, full, train, events = world
    holdout = holdout_split(train, method, 0.25, seed=0, events=events)
    # the reference: the preparation task's split of the train events, then features
    # (the preparation task holds ids as categoricals)
    is_test, _, _ = _split(frame.astype({"user_id": "category"}), SplitConfig(**split))
    reference = _features(harness, tmp_path, frame[~is_test], frame[is_test], f"ref-{method}")
    ref_train = load_training_data(
        reference.path("train_ratings"), reference.path("train_implicit")
    )

    assert holdout.interactions.nnz > 20  # a split worth comparing
    assert _by_id(full, "fit", holdout.fit.implicit) == _by_id(
        reference, "train", ref_train.implicit
    )
    assert _by_id(full, "fit", _ratings_frame(holdout.fit.ratings)) == _by_id(
        reference, "train", pd.read_parquet(reference.path("train_ratings"))
    )
    assert _by_id(full, "val", holdout.interactions) == {
        (u, i, 1.0)
        for u, i, _ in _by_id(
            reference, "test", pd.read_parquet(reference.path("test_interactions"))
        )
    }
    assert _by_id(full, "val", _ratings_frame(holdout.ratings)) == _by_id(
        reference, "test", pd.read_parquet(reference.path("test_ratings"))
    )


def _earliest_target_events(holdout: Holdout, events) -> dict[tuple[int, int], int]:
    """The time of each validation target's earliest event (any event of the pair)."""
    targets = holdout.interactions.tocoo()
    wanted = set(zip(targets.row.tolist(), targets.col.tolist(), strict=True))
    earliest: dict[tuple[int, int], int] = {}
    pairs = zip(events.users.tolist(), events.items.tolist(), events.times.tolist(), strict=True)
    for user, item, time in pairs:
        if (user, item) in wanted:
            earliest[(user, item)] = min(time, earliest.get((user, item), time))
    assert set(earliest) == wanted
    return earliest


def test_no_validation_target_precedes_the_training_cutoff(world):
    _, _, train, events = world
    times = np.sort(events.times)

    glob = holdout_split(train, "temporal_global", 0.25, seed=0, events=events)
    cutoff = times[int(np.floor(times.size * 0.75))]  # the preparation task's rule
    assert glob.cutoff == cutoff
    earliest = _earliest_target_events(glob, events)
    assert earliest and min(earliest.values()) >= cutoff
    # the fit side is exactly the events before the cut-off
    before = events.times < cutoff
    earlier = sp.csr_matrix(
        (events.weights[before], (events.users[before], events.items[before])),
        shape=(train.n_users, train.n_items),
    )
    np.testing.assert_allclose(glob.fit.implicit.toarray(), earlier.toarray(), rtol=1e-6)

    per_user = holdout_split(train, "temporal_per_user", 0.25, seed=0, events=events)
    earliest = _earliest_target_events(per_user, events)
    assert earliest
    for (user, _), time in earliest.items():
        mine = np.sort(events.times[events.users == user])
        held = max(1, int(np.floor(mine.size * 0.25)))
        assert mine.size > held  # a validation user keeps training events
        # the user's training cut-off: its latest training event
        assert time >= mine[mine.size - held - 1]
        assert time >= mine[mine.size - held]  # and it is among the user's held-out events
