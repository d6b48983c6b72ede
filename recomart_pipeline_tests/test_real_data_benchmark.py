"""benchmarks/real_data.py cannot rot: on a generated file in a public shape it runs
init-data + run in a scratch project and records the figures docs/real_data.md shows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.real_shapes import write_u_data

pytestmark = pytest.mark.slow


def test_real_data_benchmark_records_the_run_next_to_popularity(tmp_path: Path) -> None:
    data = write_u_data(tmp_path)
    results = tmp_path / "real_data.json"
    script = REPO_ROOT / "benchmarks" / "real_data.py"
    done = subprocess.run(
        [sys.executable, str(script), f"u-data-shape={data}", "--workdir", str(tmp_path / "w"),
         "--json", str(results)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(results.read_text())["datasets"]["u-data-shape"]
    assert figures["file_rows"] == figures["rows_kept"] == len(data.read_text().splitlines())
    assert figures["protocol"] in ("temporal_global", "temporal_per_user")
    assert figures["eval_users"] >= 100
    best, baseline = figures["best"]["ndcg_at_10"], figures["popularity"]["ndcg_at_10"]
    assert best["interval_95"][0] <= best["value"] <= best["interval_95"][1]
    assert best["value"] > baseline["value"]
    assert str(data) not in results.read_text()  # figures only, no local paths
    table = subprocess.run(
        [sys.executable, str(script), "--table", "--json", str(results)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert f"| u-data-shape | {figures['rows_kept']:,} / {figures['file_rows']:,} |" in table
