"""The same upstream outputs give the same report, summary and monitoring files, byte for
byte, whatever the run id and the time: run facts live in the manifest and task metadata."""

from __future__ import annotations

import shutil

from recomart_pipeline import PipelineConfig
from recomart_pipeline.contract.documents import (
    CandidateSummary,
    Deployment,
    MonitoringSnapshot,
    ReportSummary,
)
from recomart_pipeline.reporting import charts
from recomart_pipeline.reporting.render import CHANGES_TITLE, Section, stable_text, to_html
from recomart_pipeline.runtime.runner import run_task
from recomart_pipeline_tests.deployment.conftest import set_deploy_config

OUTPUTS = {
    "report": ["report_md", "report_html"],  # report_summary names the run's report copy
    "deploy": ["service_marker"],  # deployment.json: report_path, likewise
    "monitoring": ["monitoring_snapshot", "known_entities"],
}


def test_the_report_is_byte_identical_in_two_runs_of_the_same_outputs(trained_template, tmp_path):
    # Two copies of one trained project run report, deploy and monitoring, each under its own
    # run id (both compare with the template's run-1); the deploy tests verify the service.
    files: dict[str, list[bytes]] = {}
    for run_id in ("run-a", "run-b"):
        shutil.copytree(trained_template, tmp_path / run_id)
        config = PipelineConfig(tmp_path / run_id / "pipeline_config.yaml")
        config = set_deploy_config(config, "{service: {mode: none}}")
        for task in ("report", "deploy", "monitoring"):
            outcome = run_task(config, task, run_id)
            for name in OUTPUTS[task]:
                files.setdefault(f"{task}/{name}", []).append(
                    outcome.checkpoint.path(name).read_bytes()
                )
    for name, (first, second) in files.items():
        assert first == second, name
    markdown = files["report/report_md"][0].decode()
    assert "run-a" not in markdown and "UTC" not in markdown and "fit seconds" not in markdown
    assert f"## {CHANGES_TITLE}" in markdown and "compared with run run-1" in markdown


def test_charts_and_html_render_identically_twice():
    def page() -> str:
        section = Section("Data", ["- one line", "", "| a | b |", "|---|---|", "| 1 | 2.5 |"])
        section.charts.append(("ratings", charts.rating_distribution({1: 3, 4: 9, 5: 2})))
        curves = {"svd": [{"epoch": 1, "train_rmse": 1.0, "val_rmse": 1.1}, {"epoch": 2}]}
        section.charts.append(("curves", charts.training_curves(curves)))
        return to_html("Report", "subtitle", [section, Section(CHANGES_TITLE, ["- x"])])

    first, second = page(), page()
    assert first == second
    stable = stable_text(first)  # what reproduce compares: all but the last section
    assert first.startswith(stable) and "data:image/png" in stable
    assert CHANGES_TITLE not in stable and CHANGES_TITLE in first


def test_documents_of_earlier_versions_with_run_facts_still_load():
    assert ReportSummary.model_validate({"run_id": "r1", "best_model": "als"}).best_model == "als"
    snapshot = MonitoringSnapshot.model_validate(
        {
            "run_id": "r1",
            "rating_distribution": [1, 2, 3, 4, 5],
            "popularity_distribution": [1.0],
            "metric": "ndcg_at_10",
            "metric_value": 0.1,
            "users": 3,
            "items": 2,
        }
    )
    assert snapshot.users == 3 and "run_id" not in snapshot.model_dump()
    deployment = {
        "status": "promoted",
        "version": "v0001",
        "champion": "v0001",
        "promoted": True,
        "comparison_metric": "ndcg_at_10",
        "metrics": {},
        "service_url": "http://127.0.0.1:1",
        "registry": "storage/registry",
    }
    assert "service_url" not in Deployment.model_validate(deployment).model_dump()
    assert "fit_seconds" not in CandidateSummary.model_fields
