"""The training task cuts its validation split by the configured protocol from the features
task's train events, and says so when it cannot."""

from __future__ import annotations

import json
import logging

import pyarrow.parquet as pq
import pytest

from recomart_pipeline.tasks import training
from recomart_pipeline.tasks._tables import SPLIT_KEY
from recomart_pipeline_tests.tasks_model.conftest import RUN_ID
from recomart_pipeline_tests.tasks_model.real_features import run_features

CONFIG = {
    "candidates": [{"model_type": "als", "params": {"n_factors": 4, "n_iterations": 2}}],
}


def _validation(checkpoint) -> dict:
    return json.loads(checkpoint.path("training_summary").read_text())["validation"]


@pytest.mark.parametrize("method", ["temporal_per_user", "temporal_global"])
def test_temporal_methods_read_the_train_events(features, run_model_task, method):
    config = {**CONFIG, "validation": {"method": method, "fraction": 0.2}}
    _, checkpoint = run_model_task(training, config, {"features": features})
    validation = _validation(checkpoint)
    assert validation["method"] == method and "requested_method" not in validation
    assert validation["held_out_pairs"] > 0
    assert ("cutoff" in validation) == (method == "temporal_global")


def test_the_default_follows_the_per_user_test_protocol(features, run_model_task):
    _, checkpoint = run_model_task(training, CONFIG, {"features": features})
    assert _validation(checkpoint)["method"] == "temporal_per_user"


def test_without_train_events_a_temporal_method_falls_back_and_warns(
    store, synthetic, tmp_path, run_model_task, caplog
):
    staging = store.new_staging_dir(RUN_ID, "features")
    result = run_features(synthetic, staging, tmp_path / "features-input")
    outputs = {k: v for k, v in result.outputs.items() if k != "train_events"}
    older = store.publish(RUN_ID, "features", staging, outputs, result.metrics, {})
    with caplog.at_level(logging.WARNING, logger="recomart.test.training"):
        _, checkpoint = run_model_task(training, CONFIG, {"features": older})
    validation = _validation(checkpoint)
    assert validation["method"] == "per_user"
    assert validation["requested_method"] == "temporal_per_user"
    assert any("needs the features task's train_events" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("temporal_global", "temporal_global"),
        ("random", "random"),
        ("user_holdout", "temporal_per_user"),
    ],
)
def test_auto_mirrors_the_protocol_recorded_with_the_train_events(
    store, synthetic, tmp_path, run_model_task, protocol, expected
):
    staging = store.new_staging_dir(RUN_ID, "features")
    result = run_features(synthetic, staging, tmp_path / "features-input")
    events = result.outputs["train_events"]
    table = pq.read_table(events)
    split = json.dumps({"protocol": protocol}).encode()
    pq.write_table(table.replace_schema_metadata({SPLIT_KEY: split}), events)
    recorded = store.publish(RUN_ID, "features", staging, result.outputs, result.metrics, {})
    config = {**CONFIG, "validation": {"method": "auto"}}
    _, checkpoint = run_model_task(training, config, {"features": recorded})
    validation = _validation(checkpoint)
    assert validation["method"] == expected and "requested_method" not in validation
