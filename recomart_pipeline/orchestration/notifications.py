"""Run-status sensors that send notifications: one message per run outcome.

Sensors run in the daemon, so runs launched from the UI, by schedules, sensors, or the CLI
against the same Dagster home are all covered. Retries inside a run do not end the run,
so a task that fails three times produces one "failed after 3 attempts" message; the
sensor's cursor moves on even when a notifier is down, so old alerts are never replayed.
"""

import json

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    IntMetadataValue,
    JobDefinition,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorDefinition,
    TextMetadataValue,
    run_failure_sensor,
    run_status_sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.notify import RunNotice, TaskLine, dispatch

LOG_TAIL_LINES = 10


def _log_tail(config: PipelineConfig, task: str, run_id: str) -> list[str]:
    path = config.resolve_path(config.settings.logging.dir) / f"{task}.log"
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            lines.append(raw)  # text format logs
            continue
        if record.get("run_id") == run_id:
            lines.append(
                f"{record.get('ts', '')} {record.get('level', '')} {record.get('message', '')}"
            )
    return lines[-LOG_TAIL_LINES:]


def build_notice(config: PipelineConfig, instance: DagsterInstance, run: DagsterRun) -> RunNotice:
    """Collect the facts of a finished run from the Dagster instance and our task logs."""
    stats = instance.get_run_step_stats(run.run_id)
    tasks = [
        TaskLine(
            s.step_key,
            s.status.value if s.status else "UNKNOWN",
            (s.end_time - s.start_time) if s.end_time and s.start_time else None,
            max(1, len(s.attempts_list or [])),
        )
        for s in stats
    ]
    failed_task = error_class = error_message = None
    attempts = 0
    failures = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.STEP_FAILURE
    ).records
    event = failures[0].event_log_entry.dagster_event if failures else None
    if event is not None:
        failed_task = event.step_key
        data = event.step_failure_data
        user_data = data.user_failure_data
        if user_data is not None:
            error_message = user_data.description
            klass = user_data.metadata.get("error_class")
            # retries.py records them as MetadataValue.text and MetadataValue.int
            error_class = klass.value if isinstance(klass, TextMetadataValue) else None
            count = user_data.metadata.get("attempts")
            attempts = (
                count.value
                if isinstance(count, IntMetadataValue) and count.value is not None
                else 1
            )
        elif data.error is not None:
            error_message = data.error.message.strip().splitlines()[0]
    record = instance.get_run_record_by_id(run.run_id)
    duration = (
        record.end_time - record.start_time
        if record and record.end_time and record.start_time
        else None
    )
    base_url = config.settings.notifications.ui_base_url.rstrip("/")
    return RunNotice(
        pipeline=config.name,
        environment=config.settings.pipeline.environment,
        run_id=run.run_id,
        status="SUCCESS" if run.status == DagsterRunStatus.SUCCESS else "FAILURE",
        run_url=f"{base_url}/runs/{run.run_id}",
        tasks=tasks,
        failed_task=failed_task,
        error_class=error_class,
        error_message=error_message,
        failed_attempts=attempts,
        last_log_lines=_log_tail(config, failed_task, run.run_id) if failed_task else [],
        duration_s=duration,
    )


def notification_sensors(
    config: PipelineConfig, job: JobDefinition | UnresolvedAssetJobDefinition
) -> list[SensorDefinition]:
    settings = config.settings.notifications
    status = DefaultSensorStatus.RUNNING if settings.enabled else DefaultSensorStatus.STOPPED

    @run_status_sensor(
        name="notify_on_success",
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[job],
        default_status=status,
        description="Email/Slack message when a run succeeds (notify_success).",
    )
    def notify_on_success(context: RunStatusSensorContext) -> None:
        notice = build_notice(config, context.instance, context.dagster_run)
        context.log.info(f"notifications sent: {dispatch(config, notice)}")

    @run_failure_sensor(
        name="notify_on_failure",
        monitored_jobs=[job],
        default_status=status,
        description="Email/Slack message when a run fails (notify_failure).",
    )
    def notify_on_failure(context: RunFailureSensorContext) -> None:
        notice = build_notice(config, context.instance, context.dagster_run)
        context.log.info(f"notifications sent: {dispatch(config, notice)}")

    return [notify_on_success, notify_on_failure]
