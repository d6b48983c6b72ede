"""The report's tuning chart: the validation metric per trial and the best so far, drawn from
the trials a real tuned training run recorded, and absent when nothing was tuned."""

from __future__ import annotations

import base64
import io
import json
import re

import matplotlib.image
import numpy as np

from recomart_pipeline import PipelineConfig
from recomart_pipeline.reporting import charts
from recomart_pipeline.runtime.runner import run_task

CANDIDATES = (
    "candidates: [{name: als, model_type: als}, {name: popularity, model_type: popularity}]"
)
TUNED = (
    CANDIDATES + "\n      tuning:\n        n_trials: 4\n        candidates:\n"
    "          als: {space: {regularization: {type: float, low: 0.1, high: 50.0, log: true}}}"
)
IMAGE = re.compile(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def _pixels(png: bytes) -> np.ndarray:
    return matplotlib.image.imread(io.BytesIO(png), format="png")


def test_a_tuned_run_reports_its_trials_as_a_chart_and_an_untuned_one_does_not(trained):
    untuned = run_task(trained, "report", "run-2").checkpoint
    shown = untuned.metadata["report_markdown"]
    assert [alt for alt, _ in IMAGE.findall(shown)] == ["rating distribution", "training curves"]
    assert "tuning curves" not in untuned.path("report_html").read_text()

    text = trained.path.read_text()
    assert text.count(CANDIDATES) == 1
    trained.path.write_text(text.replace(CANDIDATES, TUNED))
    config = PipelineConfig(trained.path)
    for task in ("training", "evaluation", "inference"):
        run_task(config, task, "run-3")
    outcome = run_task(config, "report", "run-3")
    record = json.loads((trained.storage_root / "latest" / "training.json").read_text())
    path = trained.storage_root / record["artifacts"]["training_summary"]["path"]
    summary = json.loads(path.read_text())
    trials = summary["tuning"]["als"]["trials"]
    assert len(trials) == 4 and all(t["value"] is not None for t in trials)

    shown = outcome.checkpoint.metadata["report_markdown"]
    images = dict(IMAGE.findall(shown))
    assert list(images) == ["rating distribution", "training curves", "tuning curves"]
    png = base64.b64decode(images["tuning curves"])
    # the chart drawn is the one of this run's recorded trials, not of some other numbers
    values = [t["value"] for t in trials]
    best = list(np.maximum.accumulate(values))
    assert png == charts.tuning_curves("ndcg_at_10", {"als": (values, best)})
    other = charts.tuning_curves("ndcg_at_10", {"als": (values[::-1], best)})
    assert not np.array_equal(_pixels(png), _pixels(other))
    markdown = outcome.checkpoint.path("report_md").read_text()
    assert "*Chart: tuning curves (in the HTML report)*" in markdown
    assert outcome.checkpoint.path("report_html").read_text().count("data:image/png;base64,") == 3


def test_the_tuning_chart_draws_unscored_trials_as_gaps_and_every_candidate():
    both = charts.tuning_curves(
        "ndcg_at_10",
        {"als": ([0.1, None, 0.3], [0.1, 0.1, 0.3]), "ease": ([0.2, 0.25], [0.2, 0.25])},
    )
    one = charts.tuning_curves("ndcg_at_10", {"als": ([0.1, None, 0.3], [0.1, 0.1, 0.3])})
    assert both.startswith(b"\x89PNG") and one.startswith(b"\x89PNG")
    assert not np.array_equal(_pixels(both), _pixels(one))
