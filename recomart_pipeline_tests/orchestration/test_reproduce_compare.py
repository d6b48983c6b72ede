"""How `reproduce` compares one output of the original run with the reproduction's."""

from __future__ import annotations

import json

from recomart_pipeline.contract.catalog import builtin_spec
from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.orchestration.reproduce import _compare

DEPLOYMENT = {
    "status": "promoted",
    "version": "v0001",
    "champion": "v0001",
    "promoted": True,
    "comparison_metric": "ndcg_at_10",
    "metrics": {"ndcg_at_10": 0.2},
    "registry": "storage/registry",
    "report_path": "reports/report_run-1.html",
}


def _record(path, document) -> dict:
    path.write_text(json.dumps(document))
    return {"path": str(path), "sha256": sha256_file(path)}


def test_registry_state_is_left_out_but_a_changed_metric_is_named(tmp_path):
    spec = builtin_spec("deploy")
    original = _record(tmp_path / "a.json", DEPLOYMENT)
    rerun = {**DEPLOYMENT, "status": "already_champion", "promoted": False}
    rerun["report_path"] = "reports/report_run-2.html"
    same = _compare("deploy", "deployment", spec, original, _record(tmp_path / "b.json", rerun))
    assert same.verdict == "stable" and same.matches
    assert same.note.startswith("same apart from status, promoted (the registry's state")
    changed = {**rerun, "metrics": {"ndcg_at_10": 0.1}}
    other = _compare("deploy", "deployment", spec, original, _record(tmp_path / "c.json", changed))
    assert other.verdict == "different" and other.note == "differs in metrics"


def test_a_missing_output_and_a_changed_file_are_differences(tmp_path):
    spec = builtin_spec("training")
    original = _record(tmp_path / "a.json", {"x": 1})
    changed = _compare("training", "model_als", spec, original, _record(tmp_path / "b", {}))
    assert changed.verdict == "different" and changed.note.startswith("sha256 ")
    missing = _compare("training", "model_als", spec, original, None)
    assert not missing.matches and missing.note == "not written by the reproduction"
