"""One Dagster asset per task that will run, with its checks, retries and metadata."""

import json
import time

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DagsterEventType,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recomart_pipeline.config import ConfigError, PipelineConfig
from recomart_pipeline.graph import TaskDependencyGraph
from recomart_pipeline.orchestration.automation import freshness_policy_for, partitions_for
from recomart_pipeline.orchestration.failure_views import explain_blocked
from recomart_pipeline.orchestration.inputs import input_policy, selects
from recomart_pipeline.orchestration.metadata import (
    asset_kinds,
    data_version,
    materialization_metadata,
    metadata_value,
)
from recomart_pipeline.orchestration.resources import resource_keys_for
from recomart_pipeline.orchestration.retries import failure_to_dagster, retry_policy_for
from recomart_pipeline.orchestration.run_config import config_for_run, task_config_schema
from recomart_pipeline.orchestration.source_assets import lineage_source_keys
from recomart_pipeline.orchestration.sources import SOURCE_FINGERPRINT_KEY, task_source_fingerprint
from recomart_pipeline.runtime.runner import TaskFailure, TaskOutcome, run_task

OVERRIDES_TAG = "recomart/overrides"


def _check_results(outcome: TaskOutcome, task: str) -> list[AssetCheckResult]:
    return [
        AssetCheckResult(
            asset_key=AssetKey(task),
            check_name=check.name,
            passed=check.passed,
            severity=AssetCheckSeverity.ERROR
            if check.severity == "ERROR"
            else AssetCheckSeverity.WARN,
            description=check.description or None,
            metadata={k: metadata_value(k, v) for k, v in check.metadata.items()},
        )
        for check in outcome.result.checks
    ]


FAIL_FAST_MESSAGE = "not started (fail-fast)"


def failed_steps(context: AssetExecutionContext) -> list[str]:
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=DagsterEventType.STEP_FAILURE
    ).records
    return [r.event_log_entry.step_key for r in records if r.event_log_entry.step_key]


def run_deadline(config: PipelineConfig, context: AssetExecutionContext) -> float | None:
    """Epoch time at which ``execution.timeout_seconds`` runs out for this run.

    Measured from the run's start as Dagster recorded it, so the same bound holds for runs
    launched from the UI, the daemon, ``dagster job execute`` and the project CLI.
    """
    limit = config.settings.execution.timeout_seconds
    if limit is None:
        return None
    record = context.instance.get_run_record_by_id(context.run.run_id)
    started = record.start_time if record and record.start_time else time.time()
    return started + limit


def build_task_asset(config: PipelineConfig, task: str, order: list[str]) -> AssetsDefinition:
    """The asset of ``task``; ``order`` is the pipeline's execution order (for the plan of
    a run: which tasks it will materialize)."""
    settings = config.settings
    task_settings = settings.tasks[task]
    spec = config.specs[task]
    check_specs = [
        AssetCheckSpec(
            name=spec.name,
            asset=AssetKey(task),
            description=spec.description,
            blocking=spec.blocking,
        )
        for spec in spec.declared_checks(config.task_config(task))
    ]
    owners = (
        [f"team:{task_settings.owner}"]
        if task_settings.owner and "@" not in task_settings.owner
        else ([task_settings.owner] if task_settings.owner else None)
    )

    @asset(
        name=task,
        group_name=settings.pipeline.name,
        deps=[AssetKey(dep) for dep in task_settings.depends_on]
        + lineage_source_keys(config, task, order),
        description=task_settings.description or spec.description or None,
        code_version=config.task_code_version(task),
        retry_policy=retry_policy_for(config, task),
        check_specs=check_specs or None,
        owners=owners,
        partitions_def=partitions_for(config),
        metadata={
            "implementation": spec.reference,
            "timeout_seconds": task_settings.timeout_seconds,
            "retry_count": settings.retry_count(task),
        },
        tags={"environment": settings.pipeline.environment},
        kinds=asset_kinds(spec),
        config_schema=task_config_schema(config, task),
        required_resource_keys=resource_keys_for(config, task),
        freshness_policy=freshness_policy_for(config, task, order),
    )
    def _task_asset(context: AssetExecutionContext) -> MaterializeResult:
        attempt = context.retry_number + 1
        run_config = _config_for(context)
        if not settings.execution.continue_on_error:
            failed = failed_steps(context)
            if failed:
                # Dagster's executors run independent branches after a failure; fail-fast means
                # this task must not start. Its dependents are then skipped by Dagster.
                raise Failure(
                    description=f"{FAIL_FAST_MESSAGE}: '{failed[0]}' failed and "
                    "execution.continue_on_error is false",
                    allow_retries=False,
                )
        deadline = run_deadline(run_config, context)
        sources = task_source_fingerprint(run_config, task)  # before the task reads them

        def forward(level: int, message: str) -> None:
            context.log.log(level, message)

        try:
            outcome = run_task(
                run_config,
                task,
                context.run.run_id,
                attempt=attempt,
                forward=forward,
                partition_key=context.partition_key if context.has_partition_key else None,
                run_deadline=deadline,
                inputs_from=input_policy(run_config, task, context),
                planned=_planned(context),
                retries=True,
            )
        except TaskFailure as failure:
            raise failure_to_dagster(run_config, failure) from None
        explain_blocked(run_config, task, outcome, context, run_deadline=deadline, forward=forward)
        metadata = materialization_metadata(spec, outcome)
        if sources is not None:
            metadata[SOURCE_FINGERPRINT_KEY] = MetadataValue.text(sources)
        return MaterializeResult(
            metadata=metadata,
            data_version=data_version(outcome.checkpoint),
            check_results=_check_results(outcome, task) or None,
        )

    def _planned(context: AssetExecutionContext) -> list[str]:
        """The tasks this run will materialize (for PENDING in the manifest)."""
        return [t for t in order if selects(context.run, t)]

    def _config_for(context: AssetExecutionContext) -> PipelineConfig:
        """This run's config: the YAML plus the task values set in the launchpad."""
        try:
            run_config = config_for_run(config, context.run.run_config)
        except ConfigError as exc:
            raise Failure(
                description=f"invalid run config for this run:\n{exc}", allow_retries=False
            ) from None
        if run_config.run_config_overrides:
            recorded = json.dumps(run_config.safe_overrides)
            if context.run.tags.get(OVERRIDES_TAG) != recorded:
                context.instance.add_run_tags(context.run.run_id, {OVERRIDES_TAG: recorded})
            context.log.info(f"run config overrides: {run_config.run_config_overrides}")
        return run_config

    return _task_asset


def build_task_assets(config: PipelineConfig, graph: TaskDependencyGraph) -> list[AssetsDefinition]:
    order = graph.get_execution_order()
    return [build_task_asset(config, task, order) for task in order]
