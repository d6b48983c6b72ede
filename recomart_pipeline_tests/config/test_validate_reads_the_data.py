"""`validate` opens the head of each data file: a wrong path, column or time format is a
config error at its key, found in well under a second instead of after a run."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from recomart_pipeline import ConfigError, PipelineConfig
from recomart_pipeline.cli import main
from recomart_pipeline_tests.conftest import REPO_ROOT

U_DATA = """
extends: {base}
tasks:
  ingestion:
    config:
      source:
        interactions:
          path: data/u.data
          format: csv
          delimiter: tab
          header: false
          columns: [{columns}]
          constants: {{event_type: rating}}
          {timestamp}
        items: null
        users: null
"""


def _project(tmp_path: Path, columns: str, timestamp: str = "timestamp: {unit: s}") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    rows = "\n".join(
        f"{u}\t{i}\t{1 + (u + i) % 5}\t{881250949 + u * 7 + i}"
        for u in range(200)
        for i in range(5)
    )
    (tmp_path / "data" / "u.data").write_text(rows + "\n")
    config = tmp_path / "pipeline_config.yaml"
    config.write_text(
        U_DATA.format(base=REPO_ROOT / "pipeline_config.yaml", columns=columns, timestamp=timestamp)
    )
    return config


def _issues(config: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        PipelineConfig(config).check_data()
    return [issue.render(context=False) for issue in caught.value.issues]


def test_a_correct_description_passes(tmp_path):
    PipelineConfig(_project(tmp_path, "user_id, item_id, rating, timestamp")).check_data()


def test_a_wrong_column_name_fails_fast_at_its_key(tmp_path, capsys):
    config = _project(tmp_path, "user, item_id, rating, timestamp")
    started = time.perf_counter()
    code = main(["validate", str(config)])
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2
    assert "tasks.ingestion.config.source.interactions.column_mapping" in err
    assert "u.data has no column for ['user_id']" in err
    assert "its columns: ['user', 'item_id', 'rating', 'timestamp']" in err
    assert elapsed < 5  # generous on a loaded machine; the benchmark-grade figure is in the note
    assert main(["validate", "--no-data", str(config)]) == 0  # the file itself is valid YAML


def test_a_missing_file_names_the_path_key(tmp_path):
    config = _project(tmp_path, "user_id, item_id, rating, timestamp")
    (tmp_path / "data" / "u.data").unlink()
    assert _issues(config) == [
        f"{config.name}:8 tasks.ingestion.config.source.interactions.path: the interactions "
        "source data/u.data does not exist\n    hint: fix the path (relative paths start at "
        "the project folder)"
    ]


def test_epoch_numbers_without_a_unit_are_named(tmp_path):
    config = _project(tmp_path, "user_id, item_id, rating, timestamp", timestamp="")
    (issue,) = _issues(config)
    assert "source.interactions.timestamp" in issue
    assert "timestamp holds numbers (881250949, 881250950, 881250951), not dates" in issue
    assert "set timestamp: {unit: s}" in issue


def test_a_parquet_source_is_checked_by_its_schema(tmp_path):
    (tmp_path / "data").mkdir()
    pd.DataFrame({"customer": ["a"], "sku": ["b"], "when": ["2026-01-01"]}).to_parquet(
        tmp_path / "data" / "orders.parquet"
    )
    config = tmp_path / "pipeline_config.yaml"
    config.write_text(
        f"extends: {REPO_ROOT / 'pipeline_config.yaml'}\n"
        "tasks:\n  ingestion:\n    config:\n      source:\n"
        "        interactions:\n          path: data/orders.parquet\n"
        "          column_mapping: {customer: user_id, sku: item_id}\n"
        "          constants: {event_type: purchase}\n"
        "        items: null\n        users: null\n"
    )
    (issue,) = _issues(config)
    assert "orders.parquet has no column for ['timestamp']" in issue
    assert "'when'" in issue
