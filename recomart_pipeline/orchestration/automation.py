"""Schedules (and, as they arrive, sensors) built from the ``scheduling`` section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import DefaultScheduleStatus, JobDefinition, ScheduleDefinition

from recomart_pipeline.config import PipelineConfig

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def schedule_for(
    config: PipelineConfig, job: JobDefinition | UnresolvedAssetJobDefinition
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
