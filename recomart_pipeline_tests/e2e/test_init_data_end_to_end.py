"""``init-data FILE --output cfg.yaml`` then ``run cfg.yaml``, unedited, on public data shapes.

Each test writes a small file in the exact layout of a well-known public data set (generated:
no third-party data is committed), copies the shipped config into a throwaway project and
drives the real CLI: the overlay init-data writes must run the whole pipeline with every task
succeeding, the selected model beating popularity on the protocol init-data chose, and the
report saying how many users were evaluated.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.helpers import run_in_project
from recomart_pipeline_tests.real_shapes import (
    assert_good_run,
    run_pipeline,
    write_event_log,
    write_ratings_csv,
    write_retail_parquet,
    write_u_data,
)

pytestmark = pytest.mark.slow


def _onboard_and_run(
    tmp_path: Path, writer: Callable[[Path], Path]
) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    """The overlay init-data wrote, and the run's evaluation, report and stdout."""
    shutil.copy(REPO_ROOT / "pipeline_config.yaml", tmp_path / "pipeline_config.yaml")
    (tmp_path / "data").mkdir()
    data = writer(tmp_path / "data")
    done = run_in_project(
        [
            sys.executable,
            "-m",
            "recomart_pipeline",
            "init-data",
            str(data.relative_to(tmp_path)),
            "--output",
            "cfg.yaml",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Choices to confirm:" in done.stdout
    overlay = yaml.safe_load((tmp_path / "cfg.yaml").read_text())
    assert overlay["extends"] == "pipeline_config.yaml"
    rows, evaluation, report, stdout = run_pipeline(tmp_path, tmp_path / "cfg.yaml")
    assert_good_run(rows, evaluation, report)
    # the report and evaluation.json name the protocol init-data chose
    assert evaluation["protocol"] == _protocol(overlay)
    assert f"- protocol: {_protocol(overlay)}" in report
    return overlay, evaluation, report, stdout


def _protocol(overlay: dict[str, Any]) -> str:
    method: str = overlay["tasks"]["preparation"]["config"]["split"]["method"]
    return method


def test_movielens_u_data(tmp_path: Path) -> None:
    overlay, evaluation, _, _ = _onboard_and_run(tmp_path, write_u_data)
    assert _protocol(overlay) in ("temporal_global", "temporal_per_user")
    # explicit ratings: the rating models trained and report an error
    assert evaluation["validation"]["svd"]["rmse"] is not None


def test_movielens_ratings_csv_with_half_stars(tmp_path: Path) -> None:
    _, evaluation, _, _ = _onboard_and_run(tmp_path, write_ratings_csv)
    assert evaluation["validation"]["bias"]["rmse"] is not None


def test_retail_invoice_lines(tmp_path: Path) -> None:
    _, evaluation, report, _ = _onboard_and_run(tmp_path, write_retail_parquet)
    # purchases only: the rating models are skipped with their reason
    assert evaluation["best_model"] not in ("svd", "bias")  # selected among implicit models
    assert set(evaluation["models"]) == {evaluation["best_model"], "popularity"}
    assert "skipped **svd**" in report


def test_view_cart_purchase_event_log(tmp_path: Path) -> None:
    overlay, _, _, _ = _onboard_and_run(tmp_path, write_event_log)
    source = overlay["tasks"]["ingestion"]["config"]["source"]["interactions"]
    assert source["timestamp"] == {"unit": "ms"}
