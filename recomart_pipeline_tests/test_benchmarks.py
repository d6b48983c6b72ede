"""The benchmark scripts cannot rot: their quick mode runs in CI and yields sane figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recomart_pipeline_tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_quick_benchmarks_run_and_write_results():
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "run_all.py"), "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = REPO_ROOT / "benchmarks" / "results"
    e2e = json.loads((results / "end_to_end_quick.json").read_text())
    assert [r["interactions"] for r in e2e] == [20_000, 100_000]
    for run in e2e:
        assert set(run["tasks"]) >= {"ingestion", "training", "deploy", "monitoring"}
        assert run["peak_rss_mib"] > 0 and run["wall_seconds"]["median"] > 0
    overhead = json.loads((results / "overhead_quick.json").read_text())
    assert overhead["ratio"] > 0.5 and overhead["tasks"] == 10
    scale = json.loads((results / "config_scale_quick.json").read_text())
    assert [r["tasks"] for r in scale] == [100, 250]
    peers = json.loads((results / "train_vs_surprise_quick.json").read_text())
    models = peers["datasets"]["20k"]["models"]
    assert set(models) == {"recomart_svd", "surprise_svd", "popularity", "recomart_als"}
    assert models["recomart_svd"]["rmse"] < models["popularity"]["rmse"]
