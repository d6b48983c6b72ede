"""Report rendering (sections, charts, copies, what changed) and monitoring drift checks."""

from __future__ import annotations

import base64
import json
import re

import pandas as pd

from recomart_pipeline import PipelineConfig
from recomart_pipeline.runtime.runner import run_task
from recomart_pipeline.tasks.monitoring import psi

SECTIONS = [
    "## Data",
    "## Validation",
    "## Training",
    "## Model quality",
    "## Top 10 recommended items",
    "## What changed",
]


def test_report_renders_every_section_with_charts_and_copies(trained):
    outcome = run_task(trained, "report", "run-2")
    markdown = outcome.checkpoint.path("report_md").read_text()
    for heading in SECTIONS:
        assert heading in markdown, heading
    page = outcome.checkpoint.path("report_html").read_text()
    assert page.count("data:image/png;base64,") == 2  # rating distribution + training curves
    assert "<table>" in page
    reports = trained.project_root / "reports"
    assert (reports / "report_run-2.html").read_text() == page
    assert (reports / "latest.md").read_text() == markdown
    # the UI's Markdown view gets the same report with the charts as images, not names
    shown = outcome.checkpoint.metadata["report_markdown"]
    images = re.findall(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", shown)
    assert [alt for alt, _ in images] == ["rating distribution", "training curves"]
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for _, data in images)
    assert re.sub(r"!\[([^\]]+)\]\([^)]*\)", r"*Chart: \1 (in the HTML report)*", shown) == markdown
    assert "compared with run run-1" in markdown  # the template's report is the previous one
    assert re.search(r"- evaluated on [\d,]+ users \([\d,]+ held-out interactions\)", markdown)
    assert "95 % intervals over users (200 bootstrap resamples)" in markdown
    # selection on validation is shown next to the test figures it did not use
    record = json.loads((trained.storage_root / "latest" / "evaluation.json").read_text())
    evaluation_path = trained.storage_root / record["artifacts"]["evaluation"]["path"]
    evaluation = json.loads(evaluation_path.read_text())
    assert "on the validation split" in markdown
    side_by_side = markdown.split("Validation and test side by side (ndcg_at_10")[1]
    for name, metrics in evaluation["validation"].items():
        test = evaluation["models"].get(name, {}).get("ndcg_at_10")
        row = f"| {name} | {metrics['ndcg_at_10']:.4f} | {'' if test is None else f'{test:.4f}'} |"
        assert row in side_by_side, row


def test_report_marks_missing_inputs_as_not_run(trained):
    path = trained.path
    text = path.read_text().replace(
        "depends_on: [validation, preparation, features, training, evaluation, inference]",
        "depends_on: [preparation, features]",
    )
    path.write_text(text)
    outcome = run_task(PipelineConfig(path), "report", "run-3")
    markdown = outcome.checkpoint.path("report_md").read_text()
    assert markdown.count("- not run (") == 4  # validation, training, model quality, top items
    assert "## Data" in markdown and "train events" in markdown


def test_psi_is_zero_for_equal_and_large_for_shifted_distributions():
    assert psi([10, 20, 30, 40, 50], [10, 20, 30, 40, 50]) == 0.0
    assert psi([50, 40, 30, 20, 10], [10, 20, 30, 40, 50]) > 0.5


def _shift_ratings(config: PipelineConfig) -> None:
    """Make every rating 1 in the latest preparation outputs (hash records updated)."""
    from recomart_pipeline.contract.files import sha256_file

    pointer = config.storage_root / "latest" / "preparation.json"
    record = json.loads(pointer.read_text())
    for name in ("train", "test"):
        path = config.storage_root / record["artifacts"][name]["path"]
        frame = pd.read_parquet(path)
        frame["rating"] = frame["rating"].where(frame["rating"].isna(), 1.0)
        frame.to_parquet(path, index=False)
        record["artifacts"][name]["sha256"] = sha256_file(path)
    for target in (
        pointer,
        config.storage_root / "runs" / record["run_id"] / "preparation" / "_result.json",
    ):
        target.write_text(json.dumps(record))


def test_monitoring_first_run_has_no_baseline_then_detects_rating_drift(trained):
    run_task(trained, "deploy", "run-1")
    first = run_task(trained, "monitoring", "run-1")
    assert {c.name: (c.passed, c.description) for c in first.result.checks}["rating_drift"] == (
        True,
        "no baseline yet",
    )
    same = run_task(trained, "monitoring", "run-2")
    assert all(c.passed for c in same.result.checks)
    _shift_ratings(trained)
    drifted = run_task(trained, "monitoring", "run-3")
    checks = {c.name: c for c in drifted.result.checks}
    assert not checks["rating_drift"].passed and checks["rating_drift"].severity == "WARN"
    assert checks["new_entities"].passed
    report = json.loads(drifted.checkpoint.path("monitoring_report").read_text())
    assert report["baseline_run_id"] == "run-2" and report["new_user_share"] == 0.0
