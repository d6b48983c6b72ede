"""MLflow tracking against a real MLflow server (sqlite backend) started by the test."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.observers import install_observers
from recomart_pipeline.runtime.runner import run_task
from recomart_pipeline_tests.helpers import free_port

pytestmark = pytest.mark.slow
CHAIN = ["ingestion", "validation", "preparation", "features", "training", "evaluation"]


def _config(root: Path, uri: str, fail_on_error: bool = False) -> PipelineConfig:
    (root / "pipeline_config.yaml").write_text(
        f"""
tracking:
  mlflow: {{enabled: true, tracking_uri: "{uri}", experiment_name: shop, fail_on_error: {str(fail_on_error).lower()}}}
tasks:
  ingestion: {{}}
  validation: {{depends_on: [ingestion]}}
  preparation: {{depends_on: [validation]}}
  features: {{depends_on: [preparation]}}
  training:
    depends_on: [features]
    config: {{candidates: [{{name: svd, model_type: svd, params: {{n_epochs: 5}}}}, {{name: popularity, model_type: popularity}}]}}
  evaluation: {{depends_on: [training, features]}}
"""
    )
    return PipelineConfig(root / "pipeline_config.yaml")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--default-artifact-root",
            str(root / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "mlflow server exited"
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                break
        except OSError:
            time.sleep(0.5)  # poll until the server answers
    else:
        process.kill()
        raise AssertionError("mlflow server did not start")
    yield uri
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def project(tmp_path):
    generate_dataset(
        tmp_path / "data", users=120, items=60, interactions=4000, seed=2, file_format="csv"
    )
    return tmp_path


def test_training_and_evaluation_are_logged_to_mlflow(project, mlflow_server):
    from mlflow import MlflowClient

    # as every entry point that runs tasks does (the test must not depend on an earlier
    # test having built the Dagster definitions, which install them too)
    install_observers()
    config = _config(project, mlflow_server)
    for task in CHAIN:
        run_task(config, task, "run-mlflow-1")
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("shop")
    runs = client.search_runs([experiment.experiment_id], "tags.`recomart.run_id` = 'run-mlflow-1'")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["recomart.config_hash"] == config.config_hash
    assert len(run.data.tags["recomart.data_hash"]) == 64
    assert run.data.params["svd.n_epochs"] == "5"
    history = client.get_metric_history(run.info.run_id, "svd.val_rmse")
    assert [m.step for m in history] == list(range(1, len(history) + 1)) and len(history) >= 2
    assert "svd.ndcg_at_10" in run.data.metrics and "popularity.rmse" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert any(path.startswith("model/") for path in artifacts)


def test_tracking_server_down_is_a_warning_not_a_failure(project):
    config = _config(project, f"http://127.0.0.1:{free_port()}")
    for task in CHAIN[:4]:
        run_task(config, task, "run-down")
    outcome = run_task(config, "training", "run-down")  # does not raise
    assert "training_summary" in outcome.checkpoint.artifacts
    log = (project / "logs" / "training.log").read_text()
    assert "MLflow tracking at" in log and "failed" in log


def test_fail_on_error_makes_tracking_outage_fail_the_task(project):
    from recomart_pipeline.runtime.runner import TaskFailure

    config = _config(project, f"http://127.0.0.1:{free_port()}", fail_on_error=True)
    for task in CHAIN[:4]:
        run_task(config, task, "run-strict")
    with pytest.raises(TaskFailure) as excinfo:
        run_task(config, "training", "run-strict")
    assert excinfo.value.error_class == "connection_error"
