"""Whether a failed attempt is tried again, and after how long: our error classes and a
capped, jittered backoff.

Decided where the attempt failed (the runtime), so the final log line, the manifest and the
run table can say RETRYING with the wait, or why there is no retry, before Dagster acts on
it (orchestration.retries turns the decision into RetryRequested or Failure).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recomart_pipeline.config import PipelineConfig


@dataclass(frozen=True)
class RetryDecision:
    """``retry_in``: seconds before the next attempt; None when this failure is final."""

    retry_in: float | None
    reason: str  # why the failure is final ("" while retrying)
    attempts_allowed: int


def wait_before_retry(config: PipelineConfig, task: str, retry_number: int) -> float:
    policy = config.settings.retry_policy
    nominal = policy.wait_seconds(config.settings.tasks[task].retry_delay, retry_number)
    spread = nominal * policy.jitter
    return max(0.0, min(policy.max_backoff, nominal + random.uniform(-spread, spread)))


def decide_retry(
    config: PipelineConfig,
    task: str,
    error_class: str,
    attempt: int,
    run_deadline: float | None = None,
) -> RetryDecision:
    settings = config.settings
    retries = settings.retry_count(task)
    retryable = settings.retry_policy.is_retryable(error_class)
    wait = wait_before_retry(config, task, attempt)
    out_of_time = run_deadline is not None and time.time() + wait >= run_deadline
    if retryable and attempt <= retries and not out_of_time:
        return RetryDecision(wait, "", retries + 1)
    if not retryable:
        reason = f"error class '{error_class}' is not retried"
    elif out_of_time and attempt <= retries:
        limit = f"the run's execution.timeout_seconds ({settings.execution.timeout_seconds:g}s)"
        used_up = run_deadline is not None and time.time() >= run_deadline
        reason = f"no retry: {limit} {'is used up' if used_up else 'would be exceeded'}"
    else:
        reason = f"failed after {attempt} attempt{'s' if attempt > 1 else ''}"
    return RetryDecision(None, reason, retries + 1)
