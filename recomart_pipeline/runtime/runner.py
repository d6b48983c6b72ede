"""Run one task attempt: build its context, call it, check its result, publish atomically.

This is the single place every execution path goes through (Dagster assets, the ``task``
CLI, tests), so timeouts, resource limits, manifests and notifications have one seam to
plug into.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from recomart_pipeline.runtime.artifacts import ArtifactStore, Checkpoint
from recomart_pipeline.runtime.context import CheckOutcome, TaskContext, TaskResult
from recomart_pipeline.runtime.errors import TaskError, classify_exception
from recomart_pipeline.runtime.task_logging import Forward, task_logger

if TYPE_CHECKING:
    from recomart_pipeline.config import PipelineConfig


class TaskFailure(Exception):
    """A task attempt failed; carries its error class for the retry decision."""

    def __init__(self, task: str, error_class: str, message: str, attempt: int, duration_s: float):
        super().__init__(f"task '{task}' failed ({error_class}) on attempt {attempt}: {message}")
        self.task = task
        self.error_class = error_class
        self.message = message
        self.attempt = attempt
        self.duration_s = duration_s


@dataclass
class TaskOutcome:
    """A successful attempt: the published checkpoint and what the task reported."""

    task: str
    checkpoint: Checkpoint
    result: TaskResult
    duration_s: float
    inputs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failed_blocking_checks(self) -> list[CheckOutcome]:
        return [c for c in self.result.checks if not c.passed and c.severity == "ERROR"]


def _normalise(task: str, value: Any) -> TaskResult:
    if value is None:
        return TaskResult()
    if isinstance(value, TaskResult):
        return value
    if isinstance(value, dict):
        return TaskResult(**value)
    raise TaskError(
        f"task '{task}' returned {type(value).__name__}; expected TaskResult, dict or None",
        hint="return TaskResult(outputs={...}, metrics={...})",
    )


def _complete_checks(config: PipelineConfig, task: str, result: TaskResult) -> None:
    """Every declared check must be answered; an unanswered one counts as failed."""
    definition = config.task_definitions[task]
    reported = {c.name for c in result.checks}
    for spec in definition.checks(config.task_configs[task]):
        if spec.name not in reported:
            result.checks.append(
                CheckOutcome(spec.name, False, spec.severity, "the task did not report this check")
            )


def run_task(
    config: PipelineConfig,
    task: str,
    run_id: str,
    *,
    attempt: int = 1,
    forward: Forward | None = None,
    partition_key: str | None = None,
    upstream: dict[str, Checkpoint] | None = None,
    store: ArtifactStore | None = None,
) -> TaskOutcome:
    """Execute one attempt of ``task``; raise TaskFailure (classified) if it fails."""
    settings = config.settings
    store = store or ArtifactStore(config.storage_root)
    started = time.monotonic()
    log_file = config.resolve_path(settings.logging.file) if settings.logging.file else None
    with task_logger(
        task=task,
        run_id=run_id,
        attempt=attempt,
        log_dir=config.resolve_path(settings.logging.dir),
        combined_file=log_file,
        level=settings.logging.level,
        fmt=settings.logging.format,
        redact=config.redact,
        forward=forward,
        project_root=config.project_root,
    ) as logger:
        staging: Path | None = None
        try:
            inputs = (
                upstream
                if upstream is not None
                else {
                    dep: store.load_upstream(dep, run_id) for dep in settings.tasks[task].depends_on
                }
            )
            staging = store.new_staging_dir(run_id, task)
            task_config = config.task_configs[task]
            ctx = TaskContext(
                task_name=task,
                run_id=run_id,
                config=task_config,
                upstream=inputs,
                output_dir=staging,
                project_root=config.project_root,
                storage_root=store.root,
                logger=logger,
                attempt=attempt,
                partition_key=partition_key,
                pipeline_name=config.name,
                previous=store.find_checkpoint(task),
            )
            input_paths = {
                dep: [str(r.path) for r in cp.artifacts.values()] for dep, cp in inputs.items()
            }
            logger.info(
                "task started",
                extra={
                    "fields": {
                        "status": "RUNNING",
                        "input_paths": input_paths,
                        "config": _dump(task_config),
                    }
                },
            )
            result = _normalise(task, config.task_definitions[task].run(ctx))
            _complete_checks(config, task, result)
            checkpoint = store.publish(
                run_id, task, staging, result.outputs, result.metrics, result.metadata
            )
            staging = None
        except Exception as exc:
            duration = time.monotonic() - started
            error_class = classify_exception(exc)
            logger.error(
                f"task failed: {exc}",
                exc_info=not isinstance(exc, TaskError),
                extra={
                    "fields": {
                        "status": "FAILURE",
                        "error_class": error_class,
                        "duration_s": round(duration, 4),
                    }
                },
            )
            raise TaskFailure(
                task, error_class, config.redact(str(exc)), attempt, duration
            ) from exc
        finally:
            if staging is not None:
                store.discard(staging)
        duration = time.monotonic() - started
        logger.info(
            "task succeeded",
            extra={
                "fields": {
                    "status": "SUCCESS",
                    "duration_s": round(duration, 4),
                    "output_paths": {n: str(r.path) for n, r in checkpoint.artifacts.items()},
                    "metrics": result.metrics,
                    "checks": {c.name: c.passed for c in result.checks},
                }
            },
        )
        return TaskOutcome(task, checkpoint, result, duration, input_paths)


def _dump(task_config: BaseModel | dict[str, Any]) -> Any:
    if isinstance(task_config, BaseModel):
        return task_config.model_dump(mode="json")
    return task_config
