"""Build Dagster Definitions from a PipelineConfig."""

from dagster import (
    AssetSelection,
    Definitions,
    JobDefinition,
    OpExecutionContext,
    define_asset_job,
    job,
    op,
)

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.graph import TaskDependencyGraph
from recomart_pipeline.observers import install_observers
from recomart_pipeline.orchestration.assets import build_task_assets
from recomart_pipeline.orchestration.automation import (
    data_arrival_sensor,
    housekeeping,
    run_on_startup_sensor,
    schedule_for,
)
from recomart_pipeline.orchestration.console import CONSOLE_LOGGERS, QUIET_CONSOLE
from recomart_pipeline.orchestration.executors import executor_for
from recomart_pipeline.orchestration.notifications import notification_sensors, with_run_alerts
from recomart_pipeline.orchestration.resources import resources_for
from recomart_pipeline.orchestration.source_assets import build_source_assets
from recomart_pipeline.orchestration.watchdog import watchdog_sensor

JOB_NAME = "automated_pipeline_job"


def _run_tags(config: PipelineConfig) -> dict[str, str]:
    return {
        "pipeline": config.name,
        "environment": config.settings.pipeline.environment,
        "config_hash": config.config_hash[:16],
    }


def _nothing_to_run_job(config: PipelineConfig, graph: TaskDependencyGraph) -> JobDefinition:
    """When every task is skipped the job still exists and says why instead of vanishing."""
    reasons = "; ".join(f"{t}: {r}" for t, r in graph.get_skipped_tasks().items())

    @op(name="nothing_to_run")
    def nothing_to_run(context: OpExecutionContext) -> None:
        context.log.warning(f"every task is skipped ({reasons})")

    @job(
        name=JOB_NAME,
        tags=_run_tags(config),
        config=QUIET_CONSOLE,
        description="All tasks are skipped by the config.",
    )
    def empty_job() -> None:
        nothing_to_run()

    return empty_job


def build_definitions(config: PipelineConfig) -> Definitions:
    install_observers()
    graph = TaskDependencyGraph(config)
    assets = build_task_assets(config, graph)
    sources = build_source_assets(config, graph.get_execution_order())
    pipeline_job = (
        define_asset_job(
            JOB_NAME,
            # the sources are observed first, so each materialization records what it read
            selection=AssetSelection.assets(*sources, *assets),
            executor_def=with_run_alerts(executor_for(config), config),
            tags=_run_tags(config),
            # short console lines unless a run config sets loggers: (orchestration.console)
            config=QUIET_CONSOLE,
            description=config.settings.pipeline.description or f"The {config.name} pipeline.",
        )
        if assets
        else _nothing_to_run_job(config, graph)
    )
    housekeeping_job, housekeeping_schedule = housekeeping(config)
    return Definitions(
        assets=[*sources, *assets],
        resources=resources_for(config),
        loggers=CONSOLE_LOGGERS,
        jobs=[pipeline_job, housekeeping_job],
        schedules=[schedule_for(config, pipeline_job), housekeeping_schedule],
        sensors=[
            *notification_sensors(config, pipeline_job),
            data_arrival_sensor(config, pipeline_job),
            run_on_startup_sensor(config, pipeline_job),
            watchdog_sensor(config),
        ],
    )
