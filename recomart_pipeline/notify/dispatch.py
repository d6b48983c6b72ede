"""Decide which channels a run's outcome goes to, and send it (redacted)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from recomart_pipeline.notify.channels import send_email, send_slack, with_retries
from recomart_pipeline.notify.message import RunNotice
from recomart_pipeline.runtime.hooks import AttemptListener, Slow

if TYPE_CHECKING:
    from recomart_pipeline.config import PipelineConfig


def _redacted(config: PipelineConfig, notice: RunNotice) -> RunNotice:
    return replace(
        notice,
        error_message=config.redact(notice.error_message) if notice.error_message else None,
        last_log_lines=[config.redact(line) for line in notice.last_log_lines],
    )


def dispatch(config: PipelineConfig, notice: RunNotice) -> dict[str, bool]:
    """Send ``notice`` to every enabled channel that wants this status; returns sent flags."""
    settings = config.settings.notifications
    sent: dict[str, bool] = {}
    if not settings.enabled:
        return sent
    notice = _redacted(config, notice)
    email, slack = settings.email, settings.slack
    owner = (
        config.settings.tasks[notice.failed_task].owner
        if notice.failed_task in config.settings.tasks
        else None
    )
    extra = [r for r in settings.owners.get(owner or "", []) if r not in email.recipients]
    if extra:
        email = email.model_copy(update={"recipients": [*email.recipients, *extra]})
    if email.enabled and (email.notify_success if notice.succeeded else email.notify_failure):
        sent["email"] = with_retries(
            "email notification", lambda: send_email(email, notice), config.redact
        )
    if slack.enabled and (slack.notify_success if notice.succeeded else slack.notify_failure):
        sent["slack"] = with_retries(
            "slack notification", lambda: send_slack(slack, notice), config.redact
        )
    return sent


def notify_slow_task(
    config: PipelineConfig, task: str, run_id: str, duration_s: float
) -> dict[str, bool]:
    """Alert through the failure channels that ``task`` exceeded the slow-task threshold."""
    threshold = config.settings.monitoring.performance.slow_task_threshold_seconds
    base_url = config.settings.notifications.ui_base_url.rstrip("/")
    notice = RunNotice(
        pipeline=config.name,
        environment=config.settings.pipeline.environment,
        run_id=run_id,
        status="SLOW",
        run_url=f"{base_url}/runs/{run_id}",
        duration_s=duration_s,
        headline=f"task '{task}' is slow ({duration_s:.1f}s > {threshold:g}s)",
    )
    return dispatch(config, notice)


class SlowTaskAlerts(AttemptListener):
    """Sends the slow-task alert when ``monitoring.performance.notify_slow_tasks`` is on."""

    def slow(self, event: Slow) -> None:
        if event.config.settings.monitoring.performance.notify_slow_tasks:
            notify_slow_task(event.config, event.task, event.run_id, event.duration_s)
