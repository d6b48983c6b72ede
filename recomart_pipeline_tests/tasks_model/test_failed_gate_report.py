"""A failed quality gate still writes the report, marked not deployable (issue 13, point 4).

Dagster fails the step whose blocking check failed and never starts what is downstream, so
the report is written by that step (orchestration.failure_views); it is kept for inspection
like the blocked evaluation and never becomes ``latest``.
"""

from __future__ import annotations

import json

import pytest
from dagster import AssetKey

from recomart_pipeline import PipelineConfig
from recomart_pipeline.contract.status import TaskStatus
from recomart_pipeline.orchestration.execution import project_instance, run_pipeline
from recomart_pipeline.runtime.records import read_manifest

CONFIG = """
pipeline:
  name: gated
tasks:
  features:
    callable: "recomart_pipeline_tests.tasks_model.fixture_tasks:synthetic_features"
  training:
    depends_on: [features]
    config:
      candidates:
        - {name: als, model_type: als, params: {n_factors: 8, n_iterations: 5}}
        - {name: popularity, model_type: popularity}
  evaluation:
    depends_on: [training, features]
    config:
      baseline_fallback: false
      gates: {min: {ndcg_at_10: 0.01}}
  inference:
    depends_on: [evaluation, features]
    config: {k: 5}
  report:
    depends_on: [training, evaluation, inference]
"""


def _run(write_config, min_ndcg: float):
    gate = f"tasks.evaluation.config.gates.min.ndcg_at_10={min_ndcg}"
    config = PipelineConfig(write_config(CONFIG), overrides=[gate])
    report = run_pipeline(config, quiet=True)
    return config, report, {row.task: row for row in report.rows}


@pytest.mark.slow
def test_a_failed_gate_writes_the_report_but_nothing_else_downstream(write_config):
    config, good, _ = _run(write_config, 0.01)
    assert good.success
    latest = config.storage_root / "latest"
    good_report = json.loads((latest / "report.json").read_text())["run_id"]

    config, failed, rows = _run(write_config, 0.99)
    assert not failed.success
    assert rows["evaluation"].status == TaskStatus.FAILURE
    assert rows["inference"].status == TaskStatus.SKIPPED
    assert rows["report"].status == TaskStatus.SUCCESS
    assert "written after 'evaluation' failed its blocking checks" in rows["report"].detail

    # the report explains the stop, from this run's blocked evaluation, without inference
    manifest = read_manifest(config.storage_root, failed.run_id) or {}
    entry = manifest["tasks"]["report"]
    assert entry["input_runs"] == {"training": failed.run_id, "evaluation": failed.run_id}
    markdown = (config.storage_root / "runs" / failed.run_id / "report" / "report.md").read_text()
    assert "## Not deployable" in markdown
    assert "gate_min_ndcg_at_10" in markdown and "required >= 0.99" in markdown
    assert "Top recommended items" in markdown and "not run" in markdown

    # kept for inspection: latest still points at the good run's report
    assert json.loads((latest / "report.json").read_text())["run_id"] == good_report
    blocked = json.loads((latest / "report.blocked.json").read_text())
    assert blocked["run_id"] == failed.run_id
    assert blocked["blocked"] == ["evaluation:gate_min_ndcg_at_10"]

    # Dagster shows the report materialized in this run, marked as the stopped run's account
    event = project_instance(config).get_latest_materialization_event(AssetKey("report"))
    assert event is not None and event.run_id == failed.run_id
    materialization = event.asset_materialization
    assert materialization is not None
    assert materialization.metadata["explains_blocked"].value == "evaluation:gate_min_ndcg_at_10"
