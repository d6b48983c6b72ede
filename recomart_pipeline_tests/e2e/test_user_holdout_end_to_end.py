"""The whole default pipeline under the user_holdout protocol (cold-start users).

A MovieLens-style ``u.data`` file (generated from a latent-factor world, so there is signal
to find) is run with ``split.method: user_holdout``: half the users never reach training,
each is ranked from the earlier 80 % of their events (their fold-in history) and scored on
the rest. Every task must succeed, the selected model must beat popularity on those unseen
users, and evaluation.json and the report must say the protocol and how many were evaluated.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.real_shapes import assert_good_run, run_pipeline, write_u_data

pytestmark = pytest.mark.slow

OVERLAY = """
extends: {base}
pipeline: {{name: cold_start}}
tasks:
  ingestion:
    config:
      source:
        interactions:
          path: data/u.data
          format: csv
          delimiter: tab
          header: false
          columns: [user_id, item_id, rating, timestamp]
          constants: {{event_type: rating}}
          timestamp: {{unit: s}}
        items: null
        users: null
  validation:
    config: {{freshness: {{reference_time: "2026-03-15T00:00:00Z"}}}}
  preparation:
    config:
      split: {{method: user_holdout, test_fraction: 0.5, fold_in_fraction: 0.8, seed: 3}}
"""


def test_held_out_users_are_ranked_from_their_fold_in_history(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_u_data(tmp_path / "data")
    config = tmp_path / "pipeline_config.yaml"
    config.write_text(OVERLAY.format(base=REPO_ROOT / "pipeline_config.yaml"))
    rows, evaluation, report, _ = run_pipeline(tmp_path, config)

    assert_good_run(rows, evaluation, report)
    assert evaluation["protocol"] == "user_holdout"
    users = evaluation["eval_users"]
    assert f"- evaluated on {users:,} users held out of training whole (user_holdout)" in report
    # the evaluated users are the held-out ones: none of them is in the training index
    storage = tmp_path / "storage"
    features = next(storage.glob("runs/*/features"))
    held = pd.read_parquet(features / "holdout_user_index.parquet")
    trained = pd.read_parquet(features / "user_index.parquet")
    assert 100 <= evaluation["eval_users"] <= len(held) == 150
    assert set(held["user_id"]).isdisjoint(trained["user_id"])
    assert evaluation["test_interactions"] >= evaluation["eval_users"]
