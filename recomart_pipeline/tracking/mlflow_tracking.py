"""MLflow tracking: each pipeline run is one MLflow run; tasks add to it as they finish.

The hook looks at which artifacts a task produced, not at the task's name, so renamed or
user tasks that write the same artifacts are tracked too: ``training_summary`` (parameters,
per-epoch losses, fit times), ``evaluation`` (metrics of every candidate, the table, the
selected model file), ``report_md``/``report_html`` and ``deployment`` (the registered model
version follows our champion through the ``champion`` alias). Runs are tagged with the
pipeline run id, config hash and data hash. A tracking server that is down is a warning
unless ``tracking.mlflow.fail_on_error`` is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

from recomart_pipeline.contract.documents import Deployment, EvaluationReport, TrainingSummary
from recomart_pipeline.contract.errors import SourceConnectionError
from recomart_pipeline.runtime.artifacts import Checkpoint
from recomart_pipeline.runtime.hooks import AttemptListener, Published

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from recomart_pipeline.config import PipelineConfig

RUN_TAG = "recomart.run_id"
DATA_ARTIFACTS = ("train_implicit", "interactions", "train")
# What a task must publish for MLflow to hear of it.
TRACKED_ARTIFACTS = frozenset(
    {"training_summary", "evaluation", "report_md", "report_html", "deployment"}
)


def _mlflow_run(
    client: MlflowClient, config: PipelineConfig, run_id: str, data_hash: str | None
) -> str:
    settings = config.settings.tracking.mlflow
    experiment = client.get_experiment_by_name(settings.experiment_name)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(settings.experiment_name)
    )
    found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{run_id}'")
    if found:
        mlflow_run_id = found[0].info.run_id
    else:
        tags = {
            RUN_TAG: run_id,
            "recomart.pipeline": config.name,
            "recomart.environment": config.settings.pipeline.environment,
            "recomart.config_hash": config.config_hash,
        }
        mlflow_run_id = client.create_run(
            experiment_id, run_name=f"{config.name} {run_id[:8]}", tags=tags
        ).info.run_id
    if data_hash:
        client.set_tag(mlflow_run_id, "recomart.data_hash", data_hash)
    return mlflow_run_id


def _log_training(
    client: MlflowClient, mlflow_run_id: str, summary: dict[str, Any], metrics: dict[str, Any]
) -> None:
    for name, candidate in summary.get("candidates", {}).items():
        client.log_param(mlflow_run_id, f"{name}.model_type", candidate.get("model_type"))
        for key, value in (candidate.get("params") or {}).items():
            client.log_param(mlflow_run_id, f"{name}.{key}", value)
        for record in candidate.get("history", []):
            step = int(record.get("epoch", 0))
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    client.log_metric(mlflow_run_id, f"{name}.{key}", float(value), step=step)
        seconds = metrics.get(f"{name}_fit_seconds")  # a run fact: the task's metric
        if isinstance(seconds, (int, float)):
            client.log_metric(mlflow_run_id, f"{name}.fit_seconds", float(seconds))


def _log_evaluation(client: MlflowClient, mlflow_run_id: str, evaluation: dict[str, Any]) -> None:
    for name, metrics in evaluation.get("models", {}).items():
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                client.log_metric(mlflow_run_id, f"{name}.{key}", float(value))
    client.log_dict(mlflow_run_id, evaluation, "evaluation/evaluation.json")
    client.set_tag(mlflow_run_id, "recomart.best_model", str(evaluation.get("best_model")))
    client.set_tag(mlflow_run_id, "recomart.gates_passed", str(evaluation.get("passed")))


def _register(
    client: MlflowClient, mlflow_run_id: str, name: str, deployment: dict[str, Any]
) -> None:
    """A model version per deployment; the ``champion`` alias follows our champion."""
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):  # already registered
        client.create_registered_model(name)
    version = client.create_model_version(
        name,
        source=f"runs:/{mlflow_run_id}/model",
        run_id=mlflow_run_id,
        tags={"recomart.version": str(deployment.get("version", ""))},
    )
    if deployment.get("promoted"):
        client.set_registered_model_alias(name, "champion", version.version)


class MlflowListener(AttemptListener):
    """Logs what a task published to MLflow (subscribed by the composition root)."""

    def published(self, event: Published) -> None:
        track_task(event.config, event.run_id, event.checkpoint, event.upstream, event.logger)


def track_task(
    config: PipelineConfig,
    run_id: str,
    checkpoint: Checkpoint,
    upstream: dict[str, Checkpoint],
    logger: logging.Logger,
) -> None:
    settings = config.settings.tracking.mlflow
    if not settings.enabled:
        return
    artifacts = checkpoint.artifacts
    if not TRACKED_ARTIFACTS & set(artifacts):
        return
    # MLflow's client retries a dead server for minutes by default; a pipeline task must not
    # hang on its tracking side channel. Users can still raise these in the environment.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=settings.tracking_uri)
        data_hash = next(
            (
                cp.artifacts[a].sha256
                for cp in upstream.values()
                for a in DATA_ARTIFACTS
                if a in cp.artifacts
            ),
            None,
        )
        mlflow_run_id = _mlflow_run(client, config, run_id, data_hash)
        if "training_summary" in artifacts:
            summary = TrainingSummary.model_validate_json(
                artifacts["training_summary"].path.read_bytes()
            )
            _log_training(
                client, mlflow_run_id, summary.model_dump(mode="json"), checkpoint.metrics
            )
        if "evaluation" in artifacts:
            evaluation = EvaluationReport.model_validate_json(
                artifacts["evaluation"].path.read_bytes()
            )
            _log_evaluation(client, mlflow_run_id, evaluation.model_dump(mode="json"))
            if "model" in artifacts:
                client.log_artifact(mlflow_run_id, str(artifacts["model"].path), "model")
        for name in ("report_md", "report_html"):
            if name in artifacts:
                client.log_artifact(mlflow_run_id, str(artifacts[name].path), "report")
        if "deployment" in artifacts:
            deployment = Deployment.model_validate_json(
                artifacts["deployment"].path.read_bytes()
            ).model_dump(mode="json")
            _register(
                client, mlflow_run_id, settings.registered_model_name or config.name, deployment
            )
        logger.info(f"tracked in MLflow run {mlflow_run_id} ({settings.tracking_uri})")
    except Exception as exc:  # a tracking outage must not fail the pipeline unless asked
        message = (
            f"MLflow tracking at {settings.tracking_uri} failed: {config.redact(str(exc))[:300]}"
        )
        if settings.fail_on_error:
            raise SourceConnectionError(
                message,
                hint="start the tracking server or set tracking.mlflow.fail_on_error: false",
            ) from exc
        logger.warning(message)
