"""Monitoring's Arrow counts equal what its pandas version computed (the version before the
Arrow rewrite, kept here as the reference): same snapshot, same known-entities file, same
new-entity shares."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recomart_pipeline import PipelineConfig
from recomart_pipeline.contract.documents import EvaluationReport
from recomart_pipeline.contract.task import ResolvedInput, TaskContext
from recomart_pipeline.runtime.runner import run_task
from recomart_pipeline.tasks.monitoring import POPULARITY_BUCKETS, _new_share, _snapshot
from recomart_pipeline.tasks.specs.monitoring import Config


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


def _messy_split(path: Path, users: list[str | None], items: list[str | None]) -> str:
    """Ids with nulls, case, whitespace, accents and leading zeros; ratings on .5 (rounded
    half to even) and outside 1..5 (clipped)."""
    ratings = [0.4, 2.5, 3.5, None, 5.6, 4.5, 1.5, None, 0.5, 2.0][: len(users)]
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(users, pa.string()),
                "item_id": pa.array(items, pa.string()),
                "rating": pa.array(ratings, pa.float32()),
            }
        ),
        path,
        row_group_size=3,
    )
    return str(path)


def test_snapshot_of_messy_ids_equals_the_pandas_computation(tmp_path):
    train = _messy_split(
        tmp_path / "train.parquet",
        ["a", "A", " a", None, "é", "10", "010", "a", "", "ß"],
        ["x", "X", "x", "01", None, "1", "ü", "u\u0308", "x", ""],
    )
    # ids that would be SQL if they ever reached a query's text (they reach DuckDB as data)
    test = _messy_split(
        tmp_path / "test.parquet",
        ["a", "z", None, "'); DROP TABLE train; --"],
        ["x", "y", None, 'x" OR 1=1 --'],
    )
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(
        EvaluationReport.model_validate(
            {
                "k": 10,
                "selection_metric": "ndcg_at_10",
                "higher_is_better": True,
                "best_model": "m",
                "model_type": "popularity",
                "model_name": "m",
                "model_format": "npz",
                "params": {},
                "baseline": "m",
                "eval_users": 1,
                "test_users": 1,
                "eval_users_sampled": False,
                "models": {"m": {"ndcg_at_10": 0.5}},
                "gates": [],
                "passed": True,
                "model_sha256": "0" * 64,
            }
        ).model_dump_json()
    )
    recommendations = tmp_path / "recommendations.parquet"
    pq.write_table(pa.table({"item_id": pa.array(["x", "X", None, "x", "01"])}), recommendations)
    inputs = {
        "train": train,
        "test": test,
        "evaluation": evaluation,
        "recommendations": recommendations,
    }
    ctx = TaskContext(
        task_name="monitoring",
        run_id="run-1",
        config=Config(),
        output_dir=tmp_path / "out",
        project_root=tmp_path,
        storage_root=tmp_path,
        logger=logging.getLogger("test"),
        resolved={
            name: [ResolvedInput("upstream", {name: Path(inputs[name])})] if name in inputs else []
            for name in ("train", "test", "evaluation", "recommendations", "deployment")
        },
    )
    snapshot, entities = _snapshot(ctx)
    expected, expected_entities = _reference(train, test)
    assert {key: getattr(snapshot, key) for key in expected} == expected
    assert expected["users"] == 10 and expected["items"] == 9  # the ids really are messy
    pd.testing.assert_frame_equal(entities, expected_entities)
    assert snapshot.recommended_items == 3
