"""Monitoring's Arrow counts equal what its pandas version computed (the version before the
Arrow rewrite, kept here as the reference): same snapshot, same known-entities file, same
new-entity shares."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa

from recomart_pipeline import PipelineConfig
from recomart_pipeline.runtime.runner import run_task
from recomart_pipeline.tasks.monitoring import POPULARITY_BUCKETS, _new_share


def _reference(train: str, test: str) -> tuple[dict[str, object], pd.DataFrame]:
    """The pandas computation monitoring used to run over whole tables."""
    events = pd.concat(
        [pd.read_parquet(p, columns=["user_id", "item_id", "rating"]) for p in (train, test)]
    )
    ratings = events["rating"].dropna().round().clip(1, 5).astype(int).value_counts()
    counts = np.sort(events["item_id"].value_counts().to_numpy())[::-1]
    buckets = np.array_split(counts, POPULARITY_BUCKETS)
    snapshot = {
        "rating_distribution": [int(ratings.get(r, 0)) for r in range(1, 6)],
        "popularity_distribution": [float(b.sum()) / max(1, counts.sum()) for b in buckets],
        "users": int(events["user_id"].nunique()),
        "items": int(events["item_id"].nunique()),
    }
    entities = pd.concat(
        [
            pd.DataFrame({"kind": "user", "id": events["user_id"].drop_duplicates().astype(str)}),
            pd.DataFrame({"kind": "item", "id": events["item_id"].drop_duplicates().astype(str)}),
        ]
    ).sort_values(["kind", "id"], ignore_index=True)
    return snapshot, entities


def _latest(config: PipelineConfig, task: str, name: str) -> str:
    record = json.loads((config.storage_root / "latest" / f"{task}.json").read_text())
    return str(config.storage_root / record["artifacts"][name]["path"])


def test_snapshot_and_entities_equal_the_pandas_computation(trained):
    run_task(trained, "deploy", "run-1")
    done = run_task(trained, "monitoring", "run-1")
    expected, entities = _reference(
        _latest(trained, "preparation", "train"), _latest(trained, "preparation", "test")
    )
    snapshot = json.loads(done.checkpoint.path("monitoring_snapshot").read_text())
    assert {key: snapshot[key] for key in expected} == expected
    written = pd.read_parquet(done.checkpoint.path("known_entities"))
    pd.testing.assert_frame_equal(written, entities)
    recommended = pd.read_parquet(_latest(trained, "inference", "recommendations"))["item_id"]
    assert snapshot["recommended_items"] == recommended.nunique()


def test_new_share_counts_the_ids_the_baseline_did_not_know():
    now = pa.table({"kind": ["user"] * 4 + ["item"] * 3, "id": ["a", "b", "c", "d", "x", "y", "z"]})
    before = pa.table({"kind": ["user", "user", "item", "user"], "id": ["b", "x", "x", "zz"]})
    # users a, c, d are new (x is an item in the baseline, not a user); items y, z are new
    assert _new_share(now, before, "user") == 3 / 4
    assert _new_share(now, before, "item") == 2 / 3
    assert (
        _new_share(
            now,
            pa.table({"kind": pa.array([], pa.string()), "id": pa.array([], pa.string())}),
            "item",
        )
        == 1.0
    )
