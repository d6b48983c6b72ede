"""Conformance: the features task on the local (DuckDB) and spark (Spark SQL) engines equals
the pandas reference, byte for byte.

Every output file (index maps, rating triples, held-out pairs, statistics, train events and
both confidence matrices) has the same bytes and every metric the same value — on the
bundled sample through the real upstream tasks, on generated dirty data with ingestion's
aggregate weights, the user_holdout protocol and fractional event weights (float32 sums and
products whose last bit depends on how they are computed), and on hand-made splits that sit
where SQL and numpy could disagree (code-point order of ids, ties, a threshold that rounds
differently in float32 and float64, nanosecond timestamps, catalog duplicates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.runtime.artifacts import Checkpoint
from recomart_pipeline.tasks._tables import TYPED_SCHEMAS, write_frame
from recomart_pipeline_tests.data.helpers import (
    REPO_ROOT,
    TaskHarness,
    events,
    publish_typed,
    sources,
)
from recomart_pipeline_tests.engines.conformance import PINNED, assert_conform, validate_on


@pytest.fixture(params=["local", pytest.param("spark", marks=pytest.mark.slow)])
def engine(request: pytest.FixtureRequest) -> str:
    """Each SQL engine in turn; spark on the module's local[2] session."""
    if request.param == "spark":
        request.getfixturevalue("spark_session")
    return str(request.param)


def _prepared(
    harness: TaskHarness,
    data: dict[str, Path],
    preparation: dict[str, Any] | None = None,
    aggregate: bool = False,
) -> Checkpoint:
    """``data`` through the real ingestion, validation and preparation tasks."""
    ingestion = sources(data)
    if aggregate:
        ingestion["source"]["interactions"] = {"path": str(data["interactions"]), "aggregate": True}
    _, ingested = harness.run("ingestion", ingestion)
    _, validated = harness.run("validation", PINNED, {"ingestion": ingested})
    _, prepared = harness.run("preparation", preparation or {}, {"validation": validated})
    return prepared


def _conform(
    harness: TaskHarness,
    prepared: Checkpoint,
    engine: str,
    config: dict[str, Any] | None = None,
    expected_engine: str | None = None,
) -> Any:
    return assert_conform(harness, prepared, engine, config or {}, expected_engine, task="features")


def test_bundled_sample(harness: TaskHarness, engine: str) -> None:
    raw = {t: REPO_ROOT / "data" / f"{t}.csv" for t in ("interactions", "items", "users")}
    result = _conform(harness, _prepared(harness, raw), engine)
    assert result.metrics["nnz"] > 0 and result.metrics["test_interactions"] > 0
    assert result.metrics["train_ratings"] > 0


# Weights with no exact binary form: the matrix's sums and the per-event products round,
# so a different order or precision shows in the bytes.
FRACTIONAL = {
    "event_weights": {"view": 0.1, "add_to_cart": 0.7, "purchase": 2.3},
    "positive_rating_threshold": 3.5,
    "low_rating_weight": 0.3,
}


def test_generated_data_user_holdout_and_aggregates(
    tmp_path: Path, harness: TaskHarness, engine: str
) -> None:
    data = generate_dataset(
        tmp_path / "gen", users=300, items=90, interactions=8000, seed=5, dirty_fraction=0.05
    )
    split = {
        "split": {"method": "user_holdout", "test_fraction": 0.3, "seed": 3, "min_eval_users": 10}
    }
    prepared = _prepared(harness, data, split, aggregate=True)
    train = pq.read_table(prepared.path("train")).to_pandas()
    # The comparison means something only if rows stand for several events (their weight
    # multiplies the event's) and the held-out users' outputs are not empty.
    assert (train["weight"] > 1).any()
    result = _conform(harness, prepared, engine, FRACTIONAL)
    metrics = result.metrics
    assert metrics["holdout_users"] > 0 and metrics["holdout_history_nnz"] > 0
    assert metrics["holdout_test_interactions"] > 0 and metrics["train_ratings"] > 0
    assert (
        _conform(harness, prepared, engine, {"exclude_seen_in_train": False}).metrics[
            "test_interactions"
        ]
        >= metrics["test_interactions"]
    )


# A float32 rating just under 3.7: at or above a threshold of 3.6999999 only when the
# threshold is rounded to float32 first, as numpy does.
JUST_UNDER = float(np.float32(3.7) - np.float32(2.4e-7))
TRAIN = events(
    [
        ("ü", "é", "view", None, "2026-01-01T00:00:00.000000001Z"),
        ("Z", "é", "purchase", None, "2026-01-01T00:00:01.000000000Z"),
        ("a", "e", "rating", 5.0, "2026-01-01T00:00:02.000000000Z"),
        ("a", "E", "rating", JUST_UNDER, "2026-01-01T00:00:03.000000000Z"),
        (
            "a",
            "e",
            "rating",
            2.0,
            "2026-01-01T00:00:04.000000000Z",
        ),  # the latest rating of the pair
        (
            "a",
            "😀",
            "wishlist",
            None,
            "2026-01-01T00:00:05.000000000Z",
        ),  # a positive with no weight
        (
            "a",
            "é",
            "rating",
            None,
            "2026-01-01T00:00:06.000000000Z",
        ),  # a rating event without a value
        ("ü", "E", "add_to_cart", None, "2026-01-01T00:00:07.123456789Z"),
        ("Z", "e", "view", None, "2026-01-01T00:00:08.000000000Z"),
        ("Z", "E", "view", None, "2026-01-01T00:00:09.000000000Z"),  # Z: one event per category
    ]
)
TEST = events(
    [
        ("a", "é", "purchase", None, "2026-02-01"),  # seen in train
        ("ü", "😀", "wishlist", None, "2026-02-02"),
        ("Z", "e", "rating", 4.0, "2026-02-03"),
        ("Z", "e", "rating", 4.0, "2026-02-03"),  # the same pair twice
        ("nobody", "e", "purchase", None, "2026-02-04"),
        ("a", "unknown", "purchase", None, "2026-02-05"),
        ("h2", "E", "purchase", None, "2026-02-06"),  # a held-out user
        ("h1", "unknown", "purchase", None, "2026-02-07"),
    ]
)
FOLD_IN = events(
    [
        ("h2", "e", "view", None, "2026-01-10"),
        ("h1", "é", "rating", 4.5, "2026-01-11"),
        ("h1", "unknown", "view", None, "2026-01-12"),
        ("a", "e", "view", None, "2026-01-13"),  # a train user: not held out
    ]
)
ITEMS = pd.DataFrame(
    {
        "item_id": ["é", "e", "E", "é", "😀"],
        "category": ["toys", "books", "Books", "games", None],  # é's first row wins
        "price": [1.5, None, 3.25, 9.0, 2.0],
        "title": "t",
    }
)
USERS = pd.DataFrame(
    {
        "user_id": ["a", "Z", "ü", "a"],
        "signup_date": pd.Timestamp("2025-01-01", tz="UTC"),
        "region": ["north", None, "east", "south"],
    }
)
EDGES = {"positive_rating_threshold": 3.6999999, "positive_event_types": ["purchase", "wishlist"]}


def test_hand_made_edges(tmp_path: Path, harness: TaskHarness, engine: str) -> None:
    tables = {"train": TRAIN, "test": TEST, "fold_in": FOLD_IN, "items": ITEMS, "users": USERS}
    prepared = publish_typed(harness, tmp_path, "preparation", tables)
    result = _conform(harness, prepared, engine, EDGES)
    assert result.metrics["holdout_users"] == 2
    assert result.metrics["test_rows_unknown_user"] == 1
    assert result.metrics["fold_in_rows_unknown_item"] == 1
    users = pd.read_parquet(result.outputs["user_index"])
    assert users["user_id"].tolist() == ["Z", "a", "ü"]  # code-point order
    ratings = pd.read_parquet(result.outputs["train_ratings"])
    assert len(ratings) == 2  # (a, E) and the latest of (a, e)
    stats = pd.read_parquet(result.outputs["user_stats"]).set_index("user_id")
    assert stats.loc["Z", "top_category"] == "Books"  # a tie of three: by code point
    _conform(harness, prepared, engine, {**EDGES, "positive_rating_threshold": 3.7})


def test_splits_not_in_the_typed_layout_are_read_by_the_reference(
    tmp_path: Path, harness: TaskHarness, engine: str
) -> None:
    """Microsecond timestamps (a hand-made upstream): the SQL reads only nanoseconds."""
    folder = tmp_path / "micro"
    folder.mkdir()
    schema = TYPED_SCHEMAS["interactions"]
    position = schema.get_field_index("timestamp")
    micro = schema.set(position, schema.field(position).with_type(pa.timestamp("us", tz="UTC")))
    files = {
        "train": write_frame(
            folder / "train.parquet",
            TRAIN.assign(timestamp=TRAIN["timestamp"].dt.floor("us")),
            micro,
        ),
        "test": write_frame(folder / "test.parquet", TEST, micro),
        "items": write_frame(folder / "items.parquet", ITEMS, TYPED_SCHEMAS["items"]),
        "users": write_frame(folder / "users.parquet", USERS, TYPED_SCHEMAS["users"]),
    }
    prepared = harness.publish("preparation", files)
    result = _conform(harness, prepared, engine, expected_engine="pandas")
    assert result.metrics["nnz"] > 0


def test_an_empty_train_split_is_refused_alike(tmp_path: Path, harness: TaskHarness) -> None:
    tables = {"train": TRAIN.iloc[:0], "test": TEST, "items": ITEMS, "users": USERS}
    prepared = publish_typed(harness, tmp_path, "preparation", tables)
    for engine in ("pandas", "local"):
        with pytest.raises(DataValidationError, match="the train split is empty"):
            validate_on(harness, prepared, engine, {}, "features")
