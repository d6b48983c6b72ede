"""Run notifications (dagster-free): message building, SMTP email and Slack webhooks."""

from recomart_pipeline.notify.dispatch import dispatch, notify_slow_task
from recomart_pipeline.notify.message import RunNotice, TaskLine

__all__ = ["RunNotice", "TaskLine", "dispatch", "notify_slow_task"]
