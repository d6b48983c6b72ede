"""Features: indices, implicit weights, held-out positives and statistics on a hand-made split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from recomart_pipeline.runtime.artifacts import Checkpoint
from recomart_pipeline.tasks import features
from recomart_pipeline_tests.data.helpers import TaskHarness, artifact_hashes, events, publish_typed

TRAIN = events(
    [
        ("u1", "i1", "view", None, "2026-01-01"),
        ("u1", "i1", "purchase", None, "2026-01-02"),
        ("u1", "i2", "rating", 5.0, "2026-01-03"),
        ("u1", "i3", "rating", 2.0, "2026-01-04"),
        ("u2", "i1", "add_to_cart", None, "2026-01-05"),
        ("u2", "i3", "view", None, "2026-01-06"),
        ("u2", "i2", "rating", 4.0, "2026-01-07"),
        ("u2", "i2", "rating", 2.0, "2026-01-08"),
        ("u3", "i2", "view", None, "2026-01-09"),
    ]
)
TEST = events(
    [
        ("u1", "i4", "purchase", None, "2026-02-01"),  # unknown item: dropped
        ("u1", "i2", "purchase", None, "2026-02-02"),  # seen in train
        ("u3", "i1", "purchase", None, "2026-02-03"),  # the one unseen positive
        ("u3", "i3", "view", None, "2026-02-04"),  # not a positive
        ("u9", "i1", "purchase", None, "2026-02-05"),  # unknown user: dropped
        ("u2", "i1", "rating", 5.0, "2026-02-06"),  # liked but seen in train
        ("u3", "i3", "rating", 3.0, "2026-02-07"),  # a rating, not liked
    ]
)
ITEMS = pd.DataFrame(
    {
        "item_id": ["i1", "i2", "i3", "i4"],
        "category": ["books", "toys", "toys", "games"],
        "price": [10.0, 20.0, 30.0, 40.0],
        "title": "t",
    }
)
USERS = pd.DataFrame(
    {
        "user_id": ["u1", "u2", "u3"],
        "signup_date": pd.Timestamp("2025-01-01", tz="UTC"),
        "region": ["north", "south", "east"],
    }
)


@pytest.fixture
def prepared(harness: TaskHarness, tmp_path: Path) -> Checkpoint:
    tables = {"train": TRAIN, "test": TEST, "items": ITEMS, "users": USERS}
    return publish_typed(harness, tmp_path, "preparation", tables)


def _run(
    harness: TaskHarness, prepared: Checkpoint, config: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[Any, Checkpoint]:
    return harness.run("features", config or {}, {"preparation": prepared}, **kwargs)


def _read(checkpoint: Checkpoint, name: str) -> pd.DataFrame:
    return pd.read_parquet(checkpoint.path(name))


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(row) for row in frame.itertuples(index=False)]


def test_indices_are_contiguous_over_sorted_train_ids(
    harness: TaskHarness, prepared: Checkpoint
) -> None:
    _, checkpoint = _run(harness, prepared)
    users, items = _read(checkpoint, "user_index"), _read(checkpoint, "item_index")
    assert _rows(users) == [("u1", 0), ("u2", 1), ("u3", 2)]
    assert _rows(items) == [
        ("i1", 0, "books", 10.0),
        ("i2", 1, "toys", 20.0),
        ("i3", 2, "toys", 30.0),
    ]
    assert users["user_idx"].dtype == np.int32 and items["item_idx"].dtype == np.int32


def test_implicit_matrix_sums_event_weights(harness: TaskHarness, prepared: Checkpoint) -> None:
    result, checkpoint = _run(harness, prepared)
    matrix = sp.load_npz(checkpoint.path("train_implicit"))
    assert matrix.format == "csr" and matrix.dtype == np.float32 and matrix.has_sorted_indices
    expected = [
        [1 + 5, 5, 0.5],  # view+purchase; liked rating = its value; disliked rating = 0.5
        [3, 4 + 0.5, 1],  # cart; two ratings of i2 add up; view
        [0, 1, 0],
    ]
    np.testing.assert_allclose(matrix.toarray(), expected)
    assert result.metrics["nnz"] == 7
    assert result.metrics["density"] == pytest.approx(7 / 9)


def test_custom_weights_and_zero_weight_pairs(harness: TaskHarness, prepared: Checkpoint) -> None:
    config = {"event_weights": {"purchase": 2.0}, "low_rating_weight": 0.0}
    _, checkpoint = _run(harness, prepared, config)
    matrix = sp.load_npz(checkpoint.path("train_implicit"))
    np.testing.assert_allclose(matrix.toarray(), [[2, 5, 0], [0, 4, 0], [0, 0, 0]])
    assert matrix.nnz == 3  # zero-weight pairs are not stored


def test_ratings_keep_the_latest_per_pair_and_drop_unknown_test_rows(
    harness: TaskHarness, prepared: Checkpoint
) -> None:
    result, checkpoint = _run(harness, prepared)
    assert _rows(_read(checkpoint, "train_ratings")) == [(0, 1, 5.0), (0, 2, 2.0), (1, 1, 2.0)]
    assert _rows(_read(checkpoint, "test_ratings")) == [(1, 0, 5.0), (2, 2, 3.0)]
    assert result.metrics["test_rows_unknown_user"] == 1
    assert result.metrics["test_rows_unknown_item"] == 1


def test_test_positives_leave_out_pairs_seen_in_train(
    harness: TaskHarness, prepared: Checkpoint
) -> None:
    _, checkpoint = _run(harness, prepared)
    assert _rows(_read(checkpoint, "test_interactions")) == [(2, 0)]
    _, checkpoint = _run(harness, prepared, {"exclude_seen_in_train": False}, run_id="all")
    assert _rows(_read(checkpoint, "test_interactions")) == [(0, 1), (1, 0), (2, 0)]


def test_user_and_item_stats(harness: TaskHarness, prepared: Checkpoint) -> None:
    _, checkpoint = _run(harness, prepared)
    users = _read(checkpoint, "user_stats").set_index("user_id")
    assert users["n_interactions"].tolist() == [4, 4, 1]
    assert users["n_items"].tolist() == [3, 3, 1]
    assert users["n_ratings"].tolist() == [2, 2, 0]
    assert users["mean_rating"].iloc[:2].tolist() == [3.5, 3.0] and np.isnan(
        users["mean_rating"].iloc[2]
    )
    assert users["activity_rank"].tolist() == [1, 2, 3]
    assert users["top_category"].tolist() == ["books", "toys", "toys"]  # u1's tie: alphabetical
    assert users["region"].tolist() == ["north", "south", "east"]
    assert users.loc["u2", "last_timestamp"] == pd.Timestamp("2026-01-08", tz="UTC")
    items = _read(checkpoint, "item_stats").set_index("item_id")
    assert items["n_interactions"].tolist() == [3, 4, 2]
    assert items["n_users"].tolist() == [2, 3, 2]
    assert items["popularity_rank"].tolist() == [2, 1, 3]
    assert items.loc["i2", "mean_rating"] == pytest.approx(11 / 3)
    assert items["category"].tolist() == ["books", "toys", "toys"]


def test_reruns_are_byte_identical(harness: TaskHarness, prepared: Checkpoint) -> None:
    _, first = _run(harness, prepared, run_id="first")
    _, second = _run(harness, prepared, run_id="second")
    assert artifact_hashes(first) == artifact_hashes(second)
    assert set(first.artifacts) == {
        "user_index",
        "item_index",
        "train_ratings",
        "test_ratings",
        "train_implicit",
        "test_interactions",
        "user_stats",
        "item_stats",
        "holdout_user_index",
        "holdout_history",
        "holdout_history_ratings",
        "holdout_test_interactions",
        "train_events",
    }
    # no fold_in input (not user_holdout): the held-out users' artifacts are empty
    assert _read(first, "holdout_user_index").empty
    assert sp.load_npz(first.path("holdout_history")).shape == (0, 3)


FOLD_IN = events(
    [
        ("u8", "i1", "purchase", None, "2026-01-10"),
        ("u8", "i3", "rating", 5.0, "2026-01-11"),
        ("u8", "i4", "view", None, "2026-01-12"),  # unknown item: dropped from the history
        ("u7", "i2", "view", None, "2026-01-13"),
        ("u7", "i2", "add_to_cart", None, "2026-01-14"),
    ]
)
HELD_OUT_TEST = events(
    [
        ("u8", "i2", "purchase", None, "2026-02-10"),  # a target
        ("u8", "i1", "purchase", None, "2026-02-11"),  # already in u8's history
        ("u7", "i3", "rating", 4.0, "2026-02-12"),  # a liked rating: a target
        ("u7", "i1", "view", None, "2026-02-13"),  # not a positive
        ("u7", "i4", "purchase", None, "2026-02-14"),  # unknown item
    ]
)


def test_held_out_users_get_a_history_and_targets_indexed_by_history_row(
    harness: TaskHarness, tmp_path: Path
) -> None:
    """user_holdout: users with no train event are numbered apart (ids sorted), their fold-in
    events weighed as train_implicit is, and their later positives indexed by history row;
    train users' artifacts are untouched by them."""
    test = pd.concat([TEST, HELD_OUT_TEST], ignore_index=True)
    tables = {"train": TRAIN, "test": test, "fold_in": FOLD_IN, "items": ITEMS, "users": USERS}
    upstream = publish_typed(harness, tmp_path, "preparation", tables)
    result, checkpoint = _run(harness, upstream)
    assert _rows(_read(checkpoint, "holdout_user_index")) == [("u7", 0), ("u8", 1)]
    history = sp.load_npz(checkpoint.path("holdout_history")).toarray()
    # u7: view 1 + add_to_cart 3 on i2; u8: purchase 5 on i1, liked rating 5 on i3
    np.testing.assert_array_equal(history, [[0, 4, 0], [5, 0, 5]])
    assert _rows(_read(checkpoint, "holdout_history_ratings")) == [(1, 2, 5.0)]
    assert _rows(_read(checkpoint, "holdout_test_interactions")) == [(0, 2), (1, 1)]
    assert _rows(_read(checkpoint, "user_index")) == [("u1", 0), ("u2", 1), ("u3", 2)]
    assert _rows(_read(checkpoint, "test_interactions")) == [(2, 0)]
    assert result.metrics["holdout_users"] == 2
    assert result.metrics["holdout_test_interactions"] == 2
    assert result.metrics["fold_in_rows_unknown_item"] == 1
    assert result.metrics["test_rows_unknown_user"] == 1  # u9 only: u7/u8 are held out
    assert result.metrics["test_rows_unknown_item"] == 2  # u1's i4 and u7's i4


def test_rating_is_not_an_event_weight() -> None:
    with pytest.raises(ValidationError, match="positive_rating_threshold"):
        features.Config.model_validate({"event_weights": {"rating": 1.0}})
