"""The report's Data figures equal what it computed when it read the whole train split
into pandas (kept here as the reference), whether the distinct users and items come from
the features task's indexes or, without them, from the split's id columns."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recomart_pipeline.contract.task import ResolvedInput, TaskContext
from recomart_pipeline.runtime.runner import run_task
from recomart_pipeline.tasks.report import _data_section
from recomart_pipeline.tasks.specs.report import Config

# nulls, empty, case, whitespace, accents, digits with leading zeros, repeats
MESSY_USERS = [None, "", "a", "A", " a", "a ", "é", "é", "10", "010", "a", None, "ß", "10"]
MESSY_ITEMS = ["x", "x", None, "", "X", "1", "01", "x", "ü", "u\u0308", None, "1", "y", "y"]


def _reference(train: Path, test: Path) -> dict[str, Any]:
    """The figures as the report computed them before: pandas over the whole split."""
    frame = pd.read_parquet(train, columns=["user_id", "item_id", "timestamp", "rating"])
    test_frame = pd.read_parquet(test, columns=["timestamp"])
    return {
        "train_rows": len(frame),
        "test_rows": len(test_frame),
        "users": int(frame["user_id"].nunique()),
        "items": int(frame["item_id"].nunique()),
        "lines": [
            f"- train events: {len(frame):,}; test events: {len(test_frame):,}",
            f"- users: {int(frame['user_id'].nunique()):,}; "
            f"items: {int(frame['item_id'].nunique()):,}",
            f"- time range: {frame['timestamp'].min()} → {test_frame['timestamp'].max()}",
            f"- rating events: {int(frame['rating'].notna().sum()):,}",
        ],
    }


def _split(path: Path, users: list[str | None], items: list[str | None]) -> Path:
    n = len(users)
    rng = np.random.default_rng(7)
    ratings = rng.choice([1.0, 2.5, 3.5, 4.0, 5.0, np.nan], size=n).astype(np.float32)
    stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**15, n))
    table = pa.table(
        {
            "user_id": pa.array(users, pa.string()),
            "item_id": pa.array(items, pa.string()),
            "timestamp": pa.array(stamps, pa.timestamp("ns", tz="UTC")),
            "rating": pa.array(ratings, pa.float32(), from_pandas=True),
        }
    )
    pq.write_table(table, path, row_group_size=4)  # several row groups, as at scale
    return path


def _context(tmp_path: Path, **inputs: Path) -> TaskContext[Config]:
    names = ["train", "test", "user_index", "item_index"]
    return TaskContext(
        task_name="report",
        run_id="run-1",
        config=Config(charts=False),
        output_dir=tmp_path / "out",
        project_root=tmp_path,
        storage_root=tmp_path,
        logger=logging.getLogger("test"),
        resolved={
            name: [ResolvedInput("upstream", {name: inputs[name]})] if name in inputs else []
            for name in names
        },
    )


def test_data_figures_from_messy_ids_equal_the_pandas_reference(tmp_path):
    train = _split(tmp_path / "train.parquet", MESSY_USERS, MESSY_ITEMS)
    test = _split(tmp_path / "test.parquet", MESSY_USERS[:5], MESSY_ITEMS[:5])
    expected = _reference(train, test)
    assert (expected["users"], expected["items"]) == (9, 8)  # the ids really are messy
    summary: dict[str, Any] = {}
    section = _data_section(_context(tmp_path, train=train, test=test), summary)
    assert section.lines == expected["lines"]
    assert summary == {k: expected[k] for k in ("train_rows", "test_rows", "users", "items")}


def test_distinct_ids_are_the_features_indexes_rows_when_they_are_inputs(tmp_path):
    train = _split(tmp_path / "train.parquet", MESSY_USERS, MESSY_ITEMS)
    test = _split(tmp_path / "test.parquet", MESSY_USERS[:5], MESSY_ITEMS[:5])
    user_index = tmp_path / "user_index.parquet"
    item_index = tmp_path / "item_index.parquet"
    pq.write_table(pa.table({"user_id": ["u1", "u2", "u3"]}), user_index)
    pq.write_table(pa.table({"item_id": ["i1", "i2"]}), item_index)
    summary: dict[str, Any] = {}
    ctx = _context(tmp_path, train=train, test=test, user_index=user_index, item_index=item_index)
    _data_section(ctx, summary)
    assert (summary["users"], summary["items"]) == (3, 2)  # the indexes', not the split's


def _latest(config: Any, task: str, name: str) -> Path:
    record = json.loads((config.storage_root / "latest" / f"{task}.json").read_text())
    return Path(config.storage_root / record["artifacts"][name]["path"])


def test_pipeline_report_figures_equal_the_pandas_reference(trained):
    """In a pipeline the indexes are the features task's: their rows are the train split's
    distinct users and items, as the old pandas count gave."""
    outcome = run_task(trained, "report", "run-2")
    expected = _reference(
        _latest(trained, "preparation", "train"), _latest(trained, "preparation", "test")
    )
    summary = json.loads(outcome.checkpoint.path("report_summary").read_text())
    assert {k: summary[k] for k in ("train_rows", "test_rows", "users", "items")} == {
        k: expected[k] for k in ("train_rows", "test_rows", "users", "items")
    }
    markdown = outcome.checkpoint.path("report_md").read_text()
    for line in expected["lines"]:
        assert line in markdown, line
