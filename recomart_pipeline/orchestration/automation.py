"""Automation from the config: the schedule, data-arrival and run-on-startup sensors, housekeeping."""

from datetime import timedelta
from typing import TYPE_CHECKING

from dagster import (
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    JobDefinition,
    OpExecutionContext,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    job,
    op,
    schedule,
    sensor,
)

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.graph import TaskDependencyGraph
from recomart_pipeline.orchestration.schedule_circuit import pause_reason
from recomart_pipeline.runtime.fingerprint import source_fingerprint

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def partitions_for(config: PipelineConfig) -> DailyPartitionsDefinition | None:
    """Daily partitions of every task when ``scheduling.partitions.enabled``."""
    settings = config.settings.scheduling
    if not settings.partitions.enabled:
        return None
    return DailyPartitionsDefinition(
        start_date=settings.partitions.start_date, timezone=settings.timezone
    )


def schedule_for(
    config: PipelineConfig, job: "JobDefinition | UnresolvedAssetJobDefinition"
) -> ScheduleDefinition:
    """The cron schedule; with daily partitions each tick runs the day that just ended."""
    scheduling = config.settings.scheduling
    partitioned = scheduling.partitions.enabled

    @schedule(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule=scheduling.cron,
        execution_timezone=scheduling.timezone,
        default_status=DefaultScheduleStatus.RUNNING
        if scheduling.enabled
        else DefaultScheduleStatus.STOPPED,
        description=f"Runs {job.name} on '{scheduling.cron}' ({scheduling.timezone})"
        + (", one daily partition per tick (the previous day)." if partitioned else "."),
    )
    def pipeline_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        paused = pause_reason(config, context.instance, job.name, f"{job.name}_schedule")
        if paused:
            return SkipReason(paused)
        tags = {"recomart/trigger": "schedule"}
        if not partitioned:
            return RunRequest(tags=tags)
        day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
        return RunRequest(run_key=f"schedule-{day}", partition_key=day, tags=tags)

    return pipeline_schedule


def housekeeping(config: PipelineConfig) -> tuple[JobDefinition, ScheduleDefinition]:
    """The retention job and its schedule (running by default when retention is enabled)."""
    from recomart_pipeline.runtime.retention import apply_retention, plan_retention

    @op(name="apply_retention")
    def apply_retention_op(context: OpExecutionContext) -> None:
        actions = plan_retention(config)
        deleted = apply_retention(config, actions)
        context.log.info(f"retention: deleted {len(deleted)} folder(s) of {len(actions)} checked")

    @job(name="housekeeping_job", description="Deletes stored outputs older than retention.")
    def housekeeping_job() -> None:
        apply_retention_op()

    retention = config.settings.retention
    schedule = ScheduleDefinition(
        name="housekeeping_schedule",
        job=housekeeping_job,
        cron_schedule=retention.cron,
        execution_timezone=config.settings.scheduling.timezone,
        default_status=DefaultScheduleStatus.RUNNING
        if retention.enabled
        else DefaultScheduleStatus.STOPPED,
    )
    return housekeeping_job, schedule


def watched_sources(config: PipelineConfig) -> list[str]:
    """External sources read by the tasks that will run (e.g. ingestion's files or URLs)."""
    return [
        source
        for task in TaskDependencyGraph(config).get_execution_order()
        for source in config.specs[task].watched_sources(config.task_config(task))
    ]


def data_arrival_sensor(
    config: PipelineConfig, job: "JobDefinition | UnresolvedAssetJobDefinition"
) -> SensorDefinition:
    """Requests a run when the watched sources change; the data's fingerprint is the run key.

    The first evaluation only records what is there (the cursor), so starting the sensor
    does not re-run old data; the cursor lives in the Dagster instance and survives daemon
    restarts, and the run key stops the same data from ever triggering twice.
    """
    arrival = config.settings.scheduling.data_arrival
    sources = watched_sources(config)

    @sensor(
        name="data_arrival_sensor",
        job=job,
        minimum_interval_seconds=arrival.interval_seconds,
        default_status=DefaultSensorStatus.RUNNING
        if arrival.enabled
        else DefaultSensorStatus.STOPPED,
        description=f"Runs the pipeline when new data lands in: {', '.join(sources) or 'nothing'}",
    )
    def data_arrival(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        if not sources:
            return SkipReason("no task declares watched sources")
        try:
            fingerprint = source_fingerprint(sources, config.project_root)
        except (OSError, ValueError) as exc:
            return SkipReason(f"cannot read the sources: {exc}")
        previous = context.cursor
        if fingerprint == previous:
            return SkipReason("no new or changed data")
        context.update_cursor(fingerprint)
        if previous is None:
            return SkipReason(f"baseline recorded ({fingerprint[:12]}); waiting for new data")
        return RunRequest(
            run_key=f"data-{fingerprint}",
            tags={"recomart/trigger": "data_arrival", "recomart/data_fingerprint": fingerprint},
        )

    return data_arrival


def run_on_startup_sensor(
    config: PipelineConfig, job: "JobDefinition | UnresolvedAssetJobDefinition"
) -> SensorDefinition:
    """One run when the daemon first sees a new version of the config, never again for it."""
    version = config.config_hash[:16]

    @sensor(
        name="run_on_startup_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING
        if config.settings.scheduling.run_on_startup
        else DefaultSensorStatus.STOPPED,
        description="scheduling.run_on_startup: one run per new config version.",
    )
    def run_on_startup(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        if context.cursor == version:
            return SkipReason(f"already ran for config version {version}")
        context.update_cursor(version)
        return RunRequest(
            run_key=f"startup-{version}",
            tags={"recomart/trigger": "run_on_startup", "recomart/config_version": version},
        )

    return run_on_startup
