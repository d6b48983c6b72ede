"""Run one task attempt: build its context, call it, check its result, publish atomically.

This is the single place every execution path goes through (Dagster assets, the ``task``
CLI, tests), so timeouts, resource limits, manifests and notifications have one seam to
plug into.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recomart_pipeline.contract.errors import (
    DiskFullError,
    TaskError,
    TaskTimeoutError,
    classify_exception,
)
from recomart_pipeline.contract.status import TaskStatus
from recomart_pipeline.contract.task import CheckOutcome, TaskResult
from recomart_pipeline.runtime.artifacts import ArtifactStore, Checkpoint, InputPolicy
from recomart_pipeline.runtime.attempt import AttemptRequest, execute_attempt, reads
from recomart_pipeline.runtime.heartbeat import ensure_heartbeat
from recomart_pipeline.runtime.hooks import Published, Slow, listeners
from recomart_pipeline.runtime.isolation import Limits, run_isolated
from recomart_pipeline.runtime.object_store import (
    ObjectStoreError,
    object_store_for,
)
from recomart_pipeline.runtime.prometheus import write_textfile
from recomart_pipeline.runtime.records import record_attempt, record_start
from recomart_pipeline.runtime.retry import RetryDecision, decide_retry
from recomart_pipeline.runtime.staging import remove_stale_staging
from recomart_pipeline.runtime.task_logging import Forward, task_logger
from recomart_pipeline.runtime.tracing import finish_span, task_span

if TYPE_CHECKING:
    from recomart_pipeline.config import PipelineConfig


class TaskFailure(Exception):
    """A task attempt failed; carries its error class for the retry decision."""

    def __init__(
        self,
        task: str,
        error_class: str,
        message: str,
        attempt: int,
        duration_s: float,
        retry: RetryDecision | None = None,
    ):
        super().__init__(f"task '{task}' failed ({error_class}) on attempt {attempt}: {message}")
        self.task = task
        self.error_class = error_class
        self.message = message
        self.attempt = attempt
        self.duration_s = duration_s
        self.retry = retry  # None: the caller does not retry (task CLI, direct calls)


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


def check_disk(config: PipelineConfig, root: Path, staging: Path | None = None) -> None:
    """``resources.max_disk_gb``: enough free space before a task, no more used by it after.

    Checking first turns a full disk into a clear error before anything is written; the
    atomic publish means a write that fails anyway leaves the previous outputs intact.
    """
    limit_gb = config.settings.resources.max_disk_gb
    if limit_gb is None:
        return
    limit = limit_gb * 1024**3
    if staging is None:
        root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(root).free
        if free < limit:
            raise DiskFullError(
                f"only {free / 1024**3:.2f} GB free under {root}; a task may need "
                f"resources.max_disk_gb = {limit_gb:g} GB",
                hint="free disk space, move storage.base_dir, or lower resources.max_disk_gb",
            )
        return
    used = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    if used > limit:
        raise DiskFullError(
            f"the task wrote {used / 1024**3:.2f} GB, more than resources.max_disk_gb "
            f"({limit_gb:g} GB)",
            hint="raise resources.max_disk_gb or make the task write less",
        )


def limits_for(
    config: PipelineConfig,
    task: str,
    run_deadline: float | None = None,
    started: float | None = None,
) -> Limits:
    """The attempt's limits: its own timeout, shortened to what is left of the run's.

    Both are wall-clock deadlines on ``time.monotonic()``: the task's from ``started`` (the
    attempt's start, default now), the run's from ``run_deadline`` (epoch seconds, from the
    run's start). The limits say which of the two comes first and its configured value, so
    a timeout names the setting that fired.
    """
    settings = config.settings
    memory_gb = settings.resources.max_memory_gb
    now = time.monotonic()
    started = now if started is None else started
    timeout = settings.tasks[task].timeout_seconds
    limit = f"tasks.{task}.timeout_seconds" if timeout is not None else None
    configured = timeout
    if run_deadline is not None:
        run_limit = settings.execution.timeout_seconds
        remaining = run_deadline - time.time()
        if remaining <= 0:
            raise TaskTimeoutError(
                f"the run exceeded execution.timeout_seconds ({run_limit:g}s); "
                f"task '{task}' was not started",
                hint="raise execution.timeout_seconds or make earlier tasks faster",
            )
        run_left = now + remaining - started  # the run's deadline, from the attempt's start
        if timeout is None or run_left < timeout:
            timeout, limit, configured = run_left, "execution.timeout_seconds", run_limit
    return Limits(
        timeout_seconds=timeout,
        memory_bytes=int(memory_gb * 1024**3) if memory_gb else None,
        threads=settings.resources.max_cpu_cores,
        deadline=started + timeout if timeout is not None else None,
        limit=limit,
        limit_seconds=configured,
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
    run_deadline: float | None = None,
    inputs_from: InputPolicy | None = None,
    planned: Sequence[str] = (),
    retries: bool = False,
    blocked_upstream: Sequence[str] = (),
) -> TaskOutcome:
    """Execute one attempt of ``task``; raise TaskFailure (classified) if it fails.

    ``run_deadline`` (epoch seconds) bounds the whole run: past it the task does not start,
    and a running task is stopped when it is reached. ``inputs_from`` says which runs'
    checkpoints the task may read (default: this run's, else ``latest``); ``upstream``
    gives the checkpoints directly instead. ``planned``: the run's other tasks, recorded as
    PENDING in the manifest until they start. ``blocked_upstream``: the failed blocking
    checks (``task:check``) of the run this task explains; its output is kept for
    inspection with them, never published as ``latest``.

    With a timeout or memory limit configured the task function runs in a child process
    (runtime.isolation); otherwise in this process, which is cheaper for small tasks.
    """
    settings = config.settings
    store = store or ArtifactStore(config.storage_root, object_store_for(config))
    ensure_heartbeat(store.root, run_id)
    remove_stale_staging(store.root, run_id)
    started = time.monotonic()
    log_file = config.resolve_path(settings.logging.file) if settings.logging.file else None
    with (
        task_logger(
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
        ) as logger,
        task_span(config, task, run_id, attempt) as span,
    ):
        staging: Path | None = None
        inputs: dict[str, Checkpoint] = {}
        input_paths: dict[str, list[str]] = {}
        try:
            policy = inputs_from or InputPolicy(runs=(run_id,))
            inputs = (
                upstream
                if upstream is not None
                else {
                    dep: store.load_upstream(
                        dep,
                        policy,
                        partition_key,
                        warn=logger.warning,
                        reads=reads(config.specs[task]),
                    )
                    for dep in settings.tasks[task].depends_on
                    if dep not in policy.absent
                }
            )
            input_paths = {
                dep: [str(r.path) for r in cp.artifacts.values()] for dep, cp in inputs.items()
            }
            check_disk(config, store.root)
            staging = store.new_staging_dir(run_id, task)
            request = AttemptRequest(
                task,
                run_id,
                attempt,
                partition_key,
                inputs,
                staging,
                store.root,
                store.previous_checkpoint(task, partition_key),
                store.remote,
            )
            limits = limits_for(config, task, run_deadline, started)
            logger.info(
                "task started",
                extra={
                    "fields": {
                        "status": "RUNNING",
                        "input_paths": input_paths,
                        "config": config.task_config(task).model_dump(mode="json"),
                        "isolated": limits.isolated,
                    }
                },
            )
            try:
                record_start(
                    config,
                    store.root,
                    run_id,
                    task,
                    attempt=attempt,
                    planned=planned,
                    remote=store.remote,
                )
            except (OSError, ObjectStoreError) as exc:
                logger.warning(f"could not mark the task running in the run manifest: {exc}")
            if limits.isolated:
                result = run_isolated(config, request, limits, logger)
            else:
                result = execute_attempt(config, request, logger)
            result.metrics = _redacted(config, result.metrics)
            result.metadata = _redacted(config, result.metadata)
            check_disk(config, store.root, staging)
            blocked = (
                *(c.name for c in result.checks if not c.passed and c.severity == "ERROR"),
                *blocked_upstream,
            )
            checkpoint = store.publish(
                run_id,
                task,
                staging,
                result.outputs,
                result.metrics,
                result.metadata,
                partition_key,
                blocked,
            )
            staging = None
            if blocked:
                logger.warning(
                    f"blocking check(s) failed: {', '.join(blocked)}; the outputs are kept in "
                    f"{store.task_dir(run_id, task)} for inspection but are not published as "
                    "latest and no task reads them"
                )
            published = Published(config, task, run_id, checkpoint, inputs, logger)
            for listener in listeners():
                listener.published(published)
        except Exception as exc:
            duration = time.monotonic() - started
            error_class = classify_exception(exc)
            status = TaskStatus.TIMEOUT if error_class == "timeout" else TaskStatus.FAILURE
            retry = (
                decide_retry(config, task, error_class, attempt, run_deadline) if retries else None
            )
            logger.error(
                f"task failed: {exc}",
                exc_info=not isinstance(exc, TaskError),
                extra={
                    "fields": {
                        "status": status,
                        "error_class": error_class,
                        "duration_s": round(duration, 4),
                        "input_paths": input_paths,
                        "output_paths": {},
                        "metrics": {},
                        **({"final": retry.reason} if retry and retry.reason else {}),
                    }
                },
            )
            if retry is not None and retry.retry_in is not None:
                logger.warning(
                    f"attempt {attempt}/{retry.attempts_allowed} failed ({error_class}); "
                    f"retrying in {retry.retry_in:.2f}s",
                    extra={
                        "fields": {
                            "status": TaskStatus.RETRYING,
                            "retry_in_s": round(retry.retry_in, 3),
                        }
                    },
                )
            message = config.redact(str(exc))
            _record(
                config,
                store,
                run_id,
                task,
                logger,
                span,
                attempt=attempt,
                status=status,
                duration_s=duration,
                error_class=error_class,
                error=message,
                upstream=inputs if input_paths else None,
                retry_in_s=retry.retry_in if retry else None,
            )
            raise TaskFailure(task, error_class, message, attempt, duration, retry) from exc
        finally:
            if staging is not None:
                store.discard(staging)
        duration = time.monotonic() - started
        threshold = settings.monitoring.performance.slow_task_threshold_seconds
        if duration > threshold:
            result.metadata["slow_task"] = True
            logger.warning(
                f"slow task: took {duration:.1f}s, more than "
                f"monitoring.performance.slow_task_threshold_seconds ({threshold:g}s)",
                extra={"fields": {"slow_task": True, "duration_s": round(duration, 4)}},
            )
            for listener in listeners():
                listener.slow(Slow(config, task, run_id, duration))
        _record(
            config,
            store,
            run_id,
            task,
            logger,
            span,
            attempt=attempt,
            status="SUCCESS",
            duration_s=duration,
            upstream=inputs,
            checkpoint=checkpoint,
            metrics=result.metrics,
        )
        logger.info(
            "task succeeded",
            extra={
                "fields": {
                    "status": "SUCCESS",
                    "duration_s": round(duration, 4),
                    "input_paths": input_paths,
                    "output_paths": {n: str(r.path) for n, r in checkpoint.artifacts.items()},
                    "metrics": result.metrics,
                    "checks": {c.name: c.passed for c in result.checks},
                }
            },
        )
        return TaskOutcome(task, checkpoint, result, duration, input_paths)


def _record(
    config: PipelineConfig,
    store: ArtifactStore,
    run_id: str,
    task: str,
    logger: logging.Logger,
    span: Any,
    **attempt: Any,
) -> None:
    """Write manifest + metrics rows and end the trace span; a full disk here must not turn
    success into failure."""
    finish_span(span, attempt["status"], attempt["duration_s"], attempt.get("error_class"))
    try:
        record_attempt(config, store.root, run_id, task, remote=store.remote, **attempt)
        write_textfile(config.name, config.resolve_path(config.settings.monitoring.metrics_dir))
    except (OSError, ObjectStoreError) as exc:
        logger.warning(f"could not record the attempt in the run manifest/metrics: {exc}")


def _redacted(config: PipelineConfig, value: Any) -> Any:
    """Secrets never reach checkpoints, manifests, metrics files or the Dagster UI."""
    if isinstance(value, str):
        return config.redact(value)
    if isinstance(value, dict):
        return {k: _redacted(config, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(config, v) for v in value]
    return value
