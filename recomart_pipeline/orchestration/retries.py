"""Retry decisions: our error classes and capped, jittered backoff on top of Dagster's retries.

Dagster's RetryPolicy knows neither error classes nor a cap on the wait, so the asset
raises ``RetryRequested`` with the wait we computed, or ``Failure(allow_retries=False)``
for an error class that another attempt cannot fix.
"""

from __future__ import annotations

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


def failure_to_dagster(config: PipelineConfig, failure: TaskFailure) -> Exception:
    """The exception the asset raises: RetryRequested when the runtime decided to retry
    (runtime.retry), else Failure with the reason there is no retry."""
    if failure.retry is not None and failure.retry.retry_in is not None:
        return RetryRequested(
            max_retries=config.settings.retry_count(failure.task),
            seconds_to_wait=failure.retry.retry_in,
        )
    reason = failure.retry.reason if failure.retry is not None else ""
    return Failure(
        description=f"{failure.message} [{reason}]" if reason else failure.message,
        metadata={
            "error_class": MetadataValue.text(failure.error_class),
            "attempts": MetadataValue.int(failure.attempt),
            "duration_s": MetadataValue.float(round(failure.duration_s, 4)),
        },
        allow_retries=False,
    )
