"""benchmarks/engines.py cannot rot: its quick mode runs (validation and preparation on both
engines) and writes its results file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recomart_pipeline_tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_quick_engine_benchmark_runs_and_writes_results() -> None:
    results = REPO_ROOT / "benchmarks" / "results" / "engines_quick.json"
    results.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "engines.py"), "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    quick = json.loads(results.read_text())["quick"]
    assert quick["identical_outputs"] is True
    assert set(quick["validation"]) == {"pandas", "local"}
    assert all(run["seconds"] > 0 for run in quick["validation"].values())
    # preparation too, on the same validated data, each config's files compared
    assert set(quick["preparation"]) == {"default", "kcore_random"}
    for run in quick["preparation"].values():
        assert run["identical_outputs"] is True
        assert {"train.parquet", "test.parquet", "fold_in.parquet"} <= set(run["compared_files"])
        assert run["pandas"]["seconds"] > 0 and run["local"]["seconds"] > 0
    # features too, from the same prepared data, every table and matrix compared
    features = quick["features"]
    assert features["identical_outputs"] is True
    assert "train_implicit.npz" in features["compared_files"]
    assert features["pandas"]["seconds"] > 0 and features["local"]["seconds"] > 0
