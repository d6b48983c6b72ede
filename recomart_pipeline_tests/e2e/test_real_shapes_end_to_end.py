"""The whole default pipeline on public data sets' shapes, by configuration alone.

Each test writes a few thousand rows in the exact layout of a well-known public data set
(generated from a latent-factor world, so there is signal to find; no third-party data is
committed), writes the config overlay a user would write for it, and runs
``python -m recomart_pipeline run`` on it unedited: every task must succeed, the selected
model must beat popularity, and the report must say how many users were evaluated.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.real_shapes import (
    assert_good_run,
    run_pipeline,
    write_event_log,
    write_ratings_csv,
    write_retail_parquet,
    write_u_data,
)

pytestmark = pytest.mark.slow
COMMON = """
extends: {base}
pipeline: {{name: {name}}}
tasks:
  ingestion:
    config:
      source:
{source}
  validation:
    config: {{freshness: {{reference_time: "2026-03-15T00:00:00Z"}}}}
  preparation:
    config: {{split: {{method: temporal_per_user, per_user_fraction: 0.2}}}}
"""


def _run(tmp_path: Path, name: str, source: str) -> tuple[dict[str, str], dict, str, str]:
    indented = "\n".join(f"        {line}" for line in source.strip().splitlines())
    overlay = COMMON.format(base=REPO_ROOT / "pipeline_config.yaml", name=name, source=indented)
    config = tmp_path / "pipeline_config.yaml"
    config.write_text(overlay)
    return run_pipeline(tmp_path, config)


def test_movielens_u_data(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_u_data(tmp_path / "data")
    rows, evaluation, report, _ = _run(
        tmp_path,
        "ml_100k",
        """
interactions:
  path: data/u.data
  format: csv
  delimiter: tab
  header: false
  columns: [user_id, item_id, rating, timestamp]
  constants: {event_type: rating}
  timestamp: {unit: s}
items: null
users: null
""",
    )
    assert_good_run(rows, evaluation, report)
    # explicit ratings: the rating models trained and report an error next to the bias baseline
    assert evaluation["validation"]["svd"]["rmse"] is not None
    assert evaluation["validation"]["bias"]["rmse"] is not None


def test_movielens_ratings_csv_with_half_stars(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_ratings_csv(tmp_path / "data")
    rows, evaluation, report, _ = _run(
        tmp_path,
        "ml_latest",
        """
interactions:
  path: data/ratings.csv
  column_mapping: {userId: user_id, movieId: item_id}
  constants: {event_type: rating}
  timestamp: {unit: s}
items: null
users: null
""",
    )
    assert_good_run(rows, evaluation, report)


def test_retail_invoice_lines_parquet(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_retail_parquet(tmp_path / "data")
    rows, evaluation, report, stdout = _run(
        tmp_path,
        "retail",
        """
interactions:
  path: data/online_retail.parquet
  column_mapping: {CustomerID: user_id, StockCode: item_id, InvoiceDate: timestamp,
                   Description: title, UnitPrice: price}
  constants: {event_type: purchase}
  timestamp: {timezone: Europe/London}
  filter:
    - {column: Quantity, op: ">", value: 0}
    - {column: InvoiceNo, op: not_startswith, value: C}
    - {column: CustomerID, op: not_null}
items: null
users: null
""",
    )
    assert_good_run(rows, evaluation, report)
    # purchases only: the rating models are skipped with their reason, not fatal
    assert evaluation["best_model"] not in ("svd", "bias")  # selected among implicit models
    assert set(evaluation["models"]) == {evaluation["best_model"], "popularity"}
    assert "skipped **svd**" in report
    training_row = next(line for line in stdout.splitlines() if line.startswith("training "))
    assert "skipped bias, svd (" in training_row and "needs explicit ratings" in training_row


def test_view_cart_purchase_event_log(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_event_log(tmp_path / "data")
    rows, evaluation, report, _ = _run(
        tmp_path,
        "events",
        """
interactions:
  path: data/events.csv
  column_mapping: {visitorid: user_id, itemid: item_id, event: event_type}
  value_mapping: {event_type: {addtocart: add_to_cart, transaction: purchase}}
  timestamp: {unit: ms}
items: null
users: null
""",
    )
    assert_good_run(rows, evaluation, report)
