"""Retry decisions: our error classes and capped, jittered backoff on top of Dagster's retries.

Dagster's RetryPolicy knows neither error classes nor a cap on the wait, so the asset
raises ``RetryRequested`` with the wait we computed, or ``Failure(allow_retries=False)``
for an error class that another attempt cannot fix.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from dagster import Backoff, Failure, Jitter, MetadataValue, RetryPolicy, RetryRequested

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.runtime.runner import TaskFailure


def retry_policy_for(config: PipelineConfig, task: str) -> RetryPolicy | None:
    """The Dagster RetryPolicy shown on the asset (and used for errors outside our runtime)."""
    settings = config.settings
    retries = settings.retry_count(task)
    if retries == 0:
        return None
    policy = settings.retry_policy
    return RetryPolicy(
        max_retries=retries,
        delay=settings.tasks[task].retry_delay,
        backoff=Backoff.EXPONENTIAL if policy.use_exponential_backoff else None,
        jitter=Jitter.PLUS_MINUS if policy.jitter > 0 else None,
    )


def wait_before_retry(config: PipelineConfig, task: str, retry_number: int) -> float:
    policy = config.settings.retry_policy
    nominal = policy.wait_seconds(config.settings.tasks[task].retry_delay, retry_number)
    spread = nominal * policy.jitter
    return max(0.0, min(policy.max_backoff, nominal + random.uniform(-spread, spread)))


def failure_to_dagster(
    config: PipelineConfig,
    failure: TaskFailure,
    log_warning: Callable[[str], None],
    run_deadline: float | None = None,
) -> Exception:
    """The exception the asset raises: RetryRequested while worth retrying, else Failure."""
    settings = config.settings
    retries = settings.retry_count(failure.task)
    retryable = settings.retry_policy.is_retryable(failure.error_class)
    wait = wait_before_retry(config, failure.task, failure.attempt)
    out_of_time = run_deadline is not None and time.time() + wait >= run_deadline
    if retryable and failure.attempt <= retries and not out_of_time:
        log_warning(
            f"attempt {failure.attempt}/{retries + 1} of '{failure.task}' failed "
            f"({failure.error_class}): {failure.message}; retrying in {wait:.2f}s"
        )
        return RetryRequested(max_retries=retries, seconds_to_wait=wait)
    if not retryable:
        reason = f"error class '{failure.error_class}' is not retried"
    elif out_of_time and failure.attempt <= retries:
        limit = f"the run's execution.timeout_seconds ({settings.execution.timeout_seconds:g}s)"
        used_up = run_deadline is not None and time.time() >= run_deadline
        reason = f"no retry: {limit} {'is used up' if used_up else 'would be exceeded'}"
    else:
        reason = f"failed after {failure.attempt} attempt{'s' if failure.attempt > 1 else ''}"
    return Failure(
        description=f"{failure.message} [{reason}]",
        metadata={
            "error_class": MetadataValue.text(failure.error_class),
            "attempts": MetadataValue.int(failure.attempt),
            "duration_s": MetadataValue.float(round(failure.duration_s, 4)),
        },
        allow_retries=False,
    )
