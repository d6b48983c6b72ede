"""The shipped default pipeline end to end with ``execution.engine: spark`` in ``local[2]``,
as users would switch it on: an environment overlay next to the config, ``run --env``.

Every task whose rules run on Spark does (validation's row rules, preparation's cleaning and
split, the features, the als candidate's training, batch inference); the rest run on this
machine from what those wrote, and the run ends deployed like the default one. Skips where Java is missing (``require_spark`` says so).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from recomart_pipeline.runtime.records import read_manifest
from recomart_pipeline_tests.engines.conftest import require_spark
from recomart_pipeline_tests.helpers import (
    DEFAULT_TASKS,
    copy_default_project,
    run_id_of,
    run_in_project,
    task_rows,
)

pytestmark = pytest.mark.slow

OVERLAY = """
execution:
  engine: spark
  spark:
    master: "local[2]"
    conf: {spark.sql.shuffle.partitions: "2", spark.ui.enabled: "false"}
"""


def _latest(storage: Path, task: str) -> dict:
    pointer: dict = json.loads((storage / "latest" / f"{task}.json").read_text())
    return pointer


def test_the_default_pipeline_runs_on_spark_local(tmp_path: Path) -> None:
    require_spark()
    project = copy_default_project(tmp_path)
    (project / "pipeline_config.spark.yaml").write_text(OVERLAY)
    done = run_in_project(
        [sys.executable, "-m", "recomart_pipeline", "run", "--env", "spark"], project, timeout=1800
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert task_rows(done.stdout) == dict.fromkeys(DEFAULT_TASKS, "SUCCESS")
    storage = project / "storage"
    manifest = read_manifest(storage, run_id_of(done.stdout)) or {}
    assert manifest["engine"] == "spark"
    engines = manifest["engines"]
    on_spark = ("ingestion", "validation", "preparation", "features", "training", "inference")
    assert {t: engines[t] for t in on_spark} == dict.fromkeys(on_spark, "spark")
    assert engines["report"] == "pandas"  # the tasks whose rules have no engine form
    ingestion = _latest(storage, "ingestion")
    assert ingestion["metadata"]["engine"] == "spark", ingestion["metadata"]  # no fallback
    training = _latest(storage, "training")
    assert training["metadata"]["trained_on"]["als"] == "spark"
    assert training["metadata"]["trained_on"]["svd"] == "local"
    inference = _latest(storage, "inference")
    assert inference["metadata"]["engine"] == "spark" and inference["metadata"]["spark_blocks"] > 1
    evaluation = json.loads(
        (storage / _latest(storage, "evaluation")["artifacts"]["evaluation"]["path"]).read_text()
    )
    assert evaluation["passed"] and "als" in evaluation["validation"]
    champion = json.loads((storage / "registry" / "champion.json").read_text())
    assert champion["version"] == "v0001"
