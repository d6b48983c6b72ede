"""benchmarks/ease_precision.py cannot rot: it fits EASE in float64 and in float32, each in its
own process, on one split, and compares their figures and rankings."""

from __future__ import annotations

import json
import runpy

from recomart_pipeline_tests.conftest import REPO_ROOT


def test_the_precision_comparison_fits_both_and_finds_the_same_rankings(tmp_path):
    module = runpy.run_path(str(REPO_ROOT / "benchmarks" / "ease_precision.py"))
    out = tmp_path / "ease_precision.json"
    module["main"](["--generate", "600,150,12000", "--max-users", "200", "--json", str(out)])
    written = json.loads(out.read_text())
    runs = written["runs"]
    assert set(runs) == {"float64", "float32"}
    for precision, run in runs.items():
        assert run["precision"] == precision
        assert run["peak_rss_mib"] >= run["rss_before_fit_mib"] > 0
        assert 0 < run["ndcg_at_10"] <= 1 and run["fit_seconds"] >= 0
    # the same data and split in both processes, and on it the same top 10 for every user
    assert runs["float64"]["test_pairs"] == runs["float32"]["test_pairs"]
    assert written["same_top10_share"] == 1.0 and written["max_metric_difference"] == 0.0
