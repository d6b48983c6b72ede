"""Automation from the config: the schedule, data-arrival and run-on-startup sensors,
housekeeping, and the freshness policy the schedule promises."""

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from dagster import (
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    FreshnessPolicy,
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
from dagster._utils.schedules import schedule_execution_time_iterator

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.graph import TaskDependencyGraph
from recomart_pipeline.orchestration.schedule_circuit import pause_reason
from recomart_pipeline.orchestration.source_assets import observe_changed_sources
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


# Enough ticks to see a weekly pattern of a minute-by-minute cron, and a year for the
# irregular monthly ones (day 31), from a fixed start so the policy is the same every load.
_GAP_SAMPLE_TICKS = 5000
_GAP_SAMPLE_DAYS = 400
_GAP_SAMPLE_START = datetime(2026, 1, 1, tzinfo=UTC)


@cache
def longest_cron_gap(cron: str, timezone: str) -> timedelta:
    """The longest wait between two ticks of ``cron`` in ``timezone``: a weekday-only
    schedule waits over the weekend, a daily one 25 hours on the night clocks go back."""
    ticks = schedule_execution_time_iterator(_GAP_SAMPLE_START.timestamp(), cron, timezone)
    previous = next(ticks)
    horizon = previous + timedelta(days=_GAP_SAMPLE_DAYS)
    longest = timedelta(0)
    for _ in range(_GAP_SAMPLE_TICKS):
        tick = next(ticks)
        if tick > horizon:
            break
        # by the clock on the wall, not of the wall: a gap across a DST change is an hour off
        longest = max(longest, timedelta(seconds=tick.timestamp() - previous.timestamp()))
        previous = tick
    return longest


def freshness_policy(config: PipelineConfig) -> FreshnessPolicy | None:
    """How fresh the pipeline's last assets must be (``monitoring.freshness``).

    ``auto`` derives it from the enabled schedule: an asset may be as old as the longest
    gap between two ticks plus the grace period before it fails, and warns from the missed
    tick on. Without a schedule nothing promises freshness, so ``auto`` attaches none.
    """
    settings = config.settings.monitoring.freshness
    if settings.max_age_hours is None:
        return None
    if settings.max_age_hours != "auto":
        return FreshnessPolicy.time_window(fail_window=timedelta(hours=settings.max_age_hours))
    scheduling = config.settings.scheduling
    if not scheduling.enabled:
        return None
    interval = longest_cron_gap(scheduling.cron, scheduling.timezone)
    grace = timedelta(hours=settings.grace_hours)
    warn = interval if grace >= timedelta(minutes=1) else None
    return FreshnessPolicy.time_window(fail_window=interval + grace, warn_window=warn)


# Per config: the tasks that will run and that none of them depends on (computed once, not
# once per asset, so a 1,000-task pipeline's definitions stay linear).
_last_tasks: "WeakKeyDictionary[PipelineConfig, frozenset[str]]" = WeakKeyDictionary()


def freshness_policy_for(
    config: PipelineConfig, task: str, order: list[str]
) -> FreshnessPolicy | None:
    """The policy of ``task``'s asset: the pipeline's policy on what a run delivers last
    (the tasks of ``order`` no other task of it depends on), none on the steps before."""
    last = _last_tasks.get(config)
    if last is None:
        needed = {dep for name in order for dep in config.settings.tasks[name].depends_on}
        last = _last_tasks[config] = frozenset(name for name in order if name not in needed)
    return freshness_policy(config) if task in last else None


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

    Each time the fingerprint moves it also records an observation of the tasks' source assets
    (orchestration.source_assets), so the UI marks what the new data makes stale. The first
    evaluation only records what is there (the cursor), so starting the sensor does not
    re-run old data; the cursor lives in the Dagster instance and survives daemon
    restarts, and the run key stops the same data from ever triggering twice.
    """
    arrival = config.settings.scheduling.data_arrival
    sources = watched_sources(config)
    order = TaskDependencyGraph(config).get_execution_order()

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
        # the UI shows what the new data makes stale now, not only once the run starts
        observe_changed_sources(config, context.instance, order)
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
