"""benchmarks/quality.py cannot rot: it runs on a small generated shop with sane figures."""

from __future__ import annotations

import json
import runpy

from recomart_pipeline_tests.conftest import REPO_ROOT


def test_the_quality_benchmark_scores_every_candidate_on_one_split(tmp_path):
    module = runpy.run_path(str(REPO_ROOT / "benchmarks" / "quality.py"))
    out = tmp_path / "quality.json"
    module["main"](["--generate", "400,120,8000", "--json", str(out)])
    [result] = json.loads(out.read_text())
    assert result["test_pairs"] + result["test_pairs_dropped_unknown"] == -(-result["pairs"] // 5)
    assert {"ease", "item_knn", "als", "popularity"} <= set(result["models"])
    for figures in result["models"].values():
        assert 0 < figures["ndcg_at_10"] <= 1 and figures["fit_seconds"] >= 0
    assert result["models"]["ease"]["ndcg_at_10"] > result["models"]["popularity"]["ndcg_at_10"]


def test_the_quality_benchmark_tunes_on_validation_within_its_budget(tmp_path):
    module = runpy.run_path(str(REPO_ROOT / "benchmarks" / "quality.py"))
    out = tmp_path / "quality.json"
    module["main"](["--generate", "300,80,5000", "--tune", "1.5", "--json", str(out)])
    [result] = json.loads(out.read_text())
    for name in module["SPACES"]:
        tuned = result["models"][f"{name}_tuned"]
        assert tuned["trials"] >= 1 and 0 < tuned["ndcg_at_10"] <= 1
        # trial 0 is the default setting: the chosen one is at least as good on validation
        assert tuned["validation_ndcg_best"] >= tuned["validation_ndcg_configured"]


def test_the_quality_benchmark_scores_a_seeded_sample_of_users_when_asked(tmp_path):
    module = runpy.run_path(str(REPO_ROOT / "benchmarks" / "quality.py"))
    runs = {}
    for label, extra in (("all", []), ("sample", ["--max-users", "50"])):
        out = tmp_path / f"{label}.json"
        module["main"](["--generate", "400,120,8000", *extra, "--json", str(out)])
        [runs[label]] = json.loads(out.read_text())
    assert "evaluated_users" not in runs["all"] and runs["sample"]["evaluated_users"] == 50
    # the same split and fits, scored on 50 of the ~400 test users: other figures
    assert runs["sample"]["pairs"] == runs["all"]["pairs"]
    sampled, everyone = runs["sample"]["models"], runs["all"]["models"]
    assert sampled["popularity"]["ndcg_at_10"] != everyone["popularity"]["ndcg_at_10"]
