"""A changed source schema stops the run before downstream tasks until a person approves it."""

from __future__ import annotations

import sys

import pytest

from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline_tests.helpers import run_in_project, table_start

pytestmark = pytest.mark.slow


def _table(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line for line in stdout[table_start(stdout) :].splitlines()[1:-1]}


@pytest.mark.parametrize("mode", ["block", "warn"])
def test_schema_change_blocks_until_approved(tmp_path, mode):
    generate_dataset(
        tmp_path / "data", users=50, items=20, interactions=600, seed=3, file_format="csv"
    )
    (tmp_path / "pipeline_config.yaml").write_text(
        f"tasks:\n  ingestion: {{config: {{schema_approval: {mode}}}}}\n"
        "  validation: {depends_on: [ingestion]}\n"
    )
    first = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr[-2000:]  # first schema: approved
    items = tmp_path / "data" / "items.csv"
    lines = items.read_text().splitlines()
    items.write_text(
        "\n".join([lines[0] + ",brand"] + [line + ",acme" for line in lines[1:]]) + "\n"
    )
    changed = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], tmp_path)
    assert "check schema_approved: FAILED" in changed.stdout
    if mode == "warn":
        assert changed.returncode == 0 and "SUCCESS" in _table(changed.stdout)["validation"]
        return
    assert changed.returncode == 1
    assert "SUCCESS" not in _table(changed.stdout)["validation"]
    approved = run_in_project(
        [sys.executable, "-m", "recomart_pipeline", "approve-schema"], tmp_path
    )
    assert approved.returncode == 0 and "items (+brand)" in approved.stdout
    again = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr[-2000:]
    assert "check schema_approved: passed" in again.stdout
