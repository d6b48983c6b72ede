"""The model tasks' inputs made by the real features task from a synthetic latent-factor world.

The synthetic interactions become the prepared tables the features task reads (rating events,
train before test), and the features task itself writes the artifacts, so a change of its
format reaches every model test instead of a hand-written copy of it.

``implicit_only=True`` is the same world as a shop without rating events: a liked item (rating
4-5) becomes a purchase, any other a view, and no event carries a rating.

``held_out_users=n`` is the user_holdout protocol's preparation: the last ``n`` users have no
train event; their train events are their fold-in history (``fold_in``) instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from recomart_pipeline.contract.catalog import builtin_spec
from recomart_pipeline.contract.task import TaskResult
from recomart_pipeline.ml.base import Ratings
from recomart_pipeline.runtime.artifacts import ArtifactStore
from recomart_pipeline.runtime.attempt import check_outputs, task_context
from recomart_pipeline.tasks._tables import TYPED_SCHEMAS, write_frame
from recomart_pipeline_tests.ml.synthetic import SyntheticData

START = pd.Timestamp("2026-01-01", tz="UTC")


def _events(ratings: Ratings, offset: pd.Timedelta, implicit_only: bool) -> pd.DataFrame:
    values = ratings.values.astype("float32")
    if implicit_only:
        event_type = np.where(values >= 4, "purchase", "view")
        values = np.full(values.shape, np.nan, dtype="float32")
    else:
        event_type = np.full(values.shape, "rating")
    return pd.DataFrame(
        {
            "user_id": [f"u{u:04d}" for u in ratings.users],
            "item_id": [f"i{i:04d}" for i in ratings.items],
            "event_type": event_type,
            "timestamp": START + offset + pd.to_timedelta(range(len(ratings.users)), unit="s"),
            "rating": values,
        }
    )


def prepared_tables(
    data: SyntheticData, out: Path, *, implicit_only: bool = False, held_out_users: int = 0
) -> dict[str, Path]:
    """The preparation task's outputs for ``data``: every train event before every test one."""
    n_users, n_items = data.train.n_users, data.train.n_items
    before = _events(data.train.ratings, pd.Timedelta(0), implicit_only)
    held = data.train.ratings.users >= n_users - held_out_users
    frames = {
        "train": (before[~held], "interactions"),
        "fold_in": (before[held], "interactions"),
        "test": (
            _events(data.test_ratings, pd.Timedelta(days=30), implicit_only),
            "interactions",
        ),
        "items": (
            pd.DataFrame(
                {
                    "item_id": [f"i{i:04d}" for i in range(n_items)],
                    "category": "books",
                    "price": 9.5,
                    "title": [f"item {i}" for i in range(n_items)],
                }
            ),
            "items",
        ),
        "users": (
            pd.DataFrame(
                {
                    "user_id": [f"u{u:04d}" for u in range(n_users)],
                    "signup_date": START,
                    "region": "EU",
                }
            ),
            "users",
        ),
    }
    out.mkdir(parents=True, exist_ok=True)
    return {
        name: write_frame(out / f"{name}.parquet", frame, TYPED_SCHEMAS[schema])
        for name, (frame, schema) in frames.items()
    }


def run_features(
    data: SyntheticData,
    staging: Path,
    scratch: Path,
    *,
    implicit_only: bool = False,
    held_out_users: int = 0,
) -> TaskResult:
    """Run the built-in features task on ``data``; its outputs land in ``staging``."""
    store = ArtifactStore(scratch / "prepared-store")
    prepared_dir = store.new_staging_dir("fixture", "preparation")
    prepared = prepared_tables(
        data, prepared_dir, implicit_only=implicit_only, held_out_users=held_out_users
    )
    upstream = {
        "preparation": store.publish("fixture", "preparation", prepared_dir, prepared, {}, {})
    }
    spec = builtin_spec("features")
    ctx = task_context(
        spec,
        "features",
        "fixture",
        spec.config(),
        upstream,
        staging,
        scratch,
        store.root,
        logging.getLogger("recomart.test.features"),
    )
    result = spec.function()(ctx)
    assert isinstance(result, TaskResult)
    check_outputs("features", spec, result)
    return result
