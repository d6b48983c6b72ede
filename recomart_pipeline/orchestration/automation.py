"""Schedules (and, as they arrive, sensors) built from the ``scheduling`` section."""

from typing import TYPE_CHECKING

from dagster import (
    DefaultScheduleStatus,
    JobDefinition,
    OpExecutionContext,
    ScheduleDefinition,
    job,
    op,
)

from recomart_pipeline.config import PipelineConfig

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def schedule_for(
    config: PipelineConfig, job: "JobDefinition | UnresolvedAssetJobDefinition"
) -> ScheduleDefinition:
    scheduling = config.settings.scheduling
    return ScheduleDefinition(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule=scheduling.cron,
        execution_timezone=scheduling.timezone,
        default_status=DefaultScheduleStatus.RUNNING
        if scheduling.enabled
        else DefaultScheduleStatus.STOPPED,
        description=f"Runs {job.name} on '{scheduling.cron}' ({scheduling.timezone}).",
    )


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
