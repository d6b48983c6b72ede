"""``init-data`` then ``run``, unedited, on a MovieLens-1M ``ratings.dat`` (``::`` separated)
and on invoice lines where customers buy the same product again (folded by customer and
stock code, weighted by the summed quantity). Generated files; the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recomart_pipeline_tests.e2e.test_init_data_end_to_end import _onboard_and_run
from recomart_pipeline_tests.real_shapes import write_ratings_dat, write_repeat_purchases

pytestmark = pytest.mark.slow


def _ingestion_result(project: Path) -> dict[str, Any]:
    """The latest ingestion checkpoint: its metrics and metadata."""
    result: dict[str, Any] = json.loads(
        (project / "storage" / "latest" / "ingestion.json").read_text()
    )
    return result


def test_movielens_1m_ratings_dat(tmp_path: Path) -> None:
    overlay, evaluation, _, _ = _onboard_and_run(tmp_path, write_ratings_dat)
    assert overlay["tasks"]["ingestion"]["config"]["source"]["interactions"]["delimiter"] == "::"
    assert evaluation["validation"]["svd"]["rmse"] is not None
    assert _ingestion_result(tmp_path)["metrics"]["interactions_rows"] == 7_500


def test_retail_repeat_purchases_folded_by_customer_and_stock_code(tmp_path: Path) -> None:
    overlay, evaluation, _, _ = _onboard_and_run(tmp_path, write_repeat_purchases)
    source = overlay["tasks"]["ingestion"]["config"]["source"]["interactions"]
    assert source["aggregate"] == {"weight": "sum:Quantity"}
    folded = _ingestion_result(tmp_path)["metadata"]["interactions_aggregation"]
    assert folded["by"] == ["user_id", "item_id", "event_type"]
    assert folded["interactions"] < folded["rows_in"] / 2  # most lines were repeats
    assert evaluation["best_model"] not in ("svd", "bias")
