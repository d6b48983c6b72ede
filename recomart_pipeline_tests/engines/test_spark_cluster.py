"""The default pipeline with ``execution.engine: spark`` on a real Spark standalone cluster
(a master and a worker started here on 127.0.0.1 from pyspark's jars), set up the way
docs/spark_cluster.md tells users: a ``spark://`` master, a shared scratch folder, the
executors' Python given by ``spark.pyspark.python`` and the package by
``spark.executorEnv.PYTHONPATH``,
the Dagster run worker (``recomart-pipeline run``) as the driver, in client mode.

What it proves: the data tasks' outputs on the cluster are byte-identical to the pandas
reference's; training's ALS ran on Spark and inference's user blocks were scored by Python
workers on the cluster's executor (the worker daemon has no PYTHONPATH: the executors get
this checkout from ``spark.executorEnv.PYTHONPATH``, ahead of whatever the interpreter has
installed); every Spark task was an application of the standalone master; the shared
scratch holds nothing afterwards.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import yaml

from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.engines.conftest import require_spark
from recomart_pipeline_tests.engines.spark_cluster import standalone_cluster
from recomart_pipeline_tests.helpers import (
    DEFAULT_TASKS,
    copy_default_project,
    run_in_project,
    task_rows,
)

pytestmark = pytest.mark.slow

DATA_TASKS = ("ingestion", "validation", "preparation", "features")
ON_SPARK = (*DATA_TASKS, "training", "inference")


def cluster_overlay(master_url: str, scratch: Path) -> str:
    """``pipeline_config.cluster.yaml``: what docs/spark_cluster.md's example sets, with this
    machine's values."""
    return yaml.safe_dump(
        {
            "execution": {
                "engine": "spark",
                "spark": {
                    "master": master_url,
                    "scratch": str(scratch),
                    "conf": {
                        "spark.pyspark.python": sys.executable,
                        "spark.executorEnv.PYTHONPATH": str(REPO_ROOT),
                        "spark.executor.memory": "1g",
                        "spark.driver.host": "127.0.0.1",
                        "spark.sql.shuffle.partitions": "4",
                        "spark.ui.enabled": "false",
                    },
                },
            }
        }
    )


def data_outputs(storage: Path) -> dict[str, dict[str, str]]:
    """task -> artifact -> SHA-256 of the data tasks' tables and matrices (the reports carry
    run ids and times)."""
    found: dict[str, dict[str, str]] = {}
    for task in DATA_TASKS:
        latest = json.loads((storage / "latest" / f"{task}.json").read_text())
        found[task] = {
            name: hashlib.sha256((storage / artifact["path"]).read_bytes()).hexdigest()
            for name, artifact in latest["artifacts"].items()
            if artifact["path"].endswith((".parquet", ".npz"))
        }
    return found


# Six Spark applications (each a JVM executor start on the worker) plus the local models'
# training: ~10 minutes on a busy 2-core machine, past the suite's 600 s default. A bound on a
# stuck run, not a speed assertion.
@pytest.mark.timeout(2400)
def test_the_default_pipeline_on_a_standalone_cluster_matches_pandas(tmp_path: Path) -> None:
    require_spark()
    (tmp_path / "pandas").mkdir()
    (tmp_path / "cluster").mkdir()
    reference = copy_default_project(tmp_path / "pandas")
    done = run_in_project(
        [sys.executable, "-m", "recomart_pipeline", "run", "--select", *DATA_TASKS],
        reference,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    expected = data_outputs(reference / "storage")
    assert all(expected[task] for task in DATA_TASKS)

    project = copy_default_project(tmp_path / "cluster")
    scratch = tmp_path / "shared-scratch"
    scratch.mkdir()
    with standalone_cluster(tmp_path / "spark") as cluster:
        (project / "pipeline_config.cluster.yaml").write_text(
            cluster_overlay(cluster.master_url, scratch)
        )
        done = run_in_project(
            [sys.executable, "-m", "recomart_pipeline", "run", "--env", "cluster"],
            project,
            timeout=2400,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        apps = cluster.applications("recomart_pipeline")
    assert task_rows(done.stdout) == dict.fromkeys(DEFAULT_TASKS, "SUCCESS")
    # One application per Spark session: each task on Spark started its own on the master.
    assert len(apps) == len(ON_SPARK) and {a["state"] for a in apps} == {"FINISHED"}
    assert data_outputs(project / "storage") == expected
    storage = project / "storage"
    training = json.loads((storage / "latest" / "training.json").read_text())
    assert training["metadata"]["trained_on"]["als"] == "spark"
    inference = json.loads((storage / "latest" / "inference.json").read_text())
    assert inference["metadata"]["engine"] == "spark" and inference["metadata"]["spark_blocks"] > 1
    assert list(scratch.iterdir()) == [], "a run left files in the shared scratch"
