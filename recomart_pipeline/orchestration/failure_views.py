"""The report of a run that a blocking check stopped: written anyway, so users see why.

Dagster fails the step of an asset whose blocking check fails and never starts the assets
downstream of it, so a failed quality gate would leave no report behind: the one document
that says which gate failed, by how much, and what the data looked like. Dagster has no
notion of a downstream asset that should still run after its upstream's check failed; this
module supplies it, in the step of the task whose check failed (the only place that knows
it failed while the run is still going):

- every selected task downstream of it whose spec ``explains_failures`` (the report) runs
  now, reading the blocked output explicitly and running without the tasks the check
  stopped (``InputPolicy.absent``; its inputs from them are optional);
- its output inherits the failed checks, so like the blocked output it is kept in the run
  folder for inspection and never becomes ``latest`` (no later run's deploy reads it);
- it is recorded as a materialization of its own asset, marked ``explains_blocked``.
"""

from collections.abc import Callable
from dataclasses import replace

from dagster import AssetExecutionContext, AssetKey, AssetMaterialization, MetadataValue

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.graph import TaskDependencyGraph
from recomart_pipeline.orchestration.inputs import input_policy, selects
from recomart_pipeline.orchestration.metadata import materialization_metadata
from recomart_pipeline.runtime.runner import TaskFailure, TaskOutcome, run_task

EXPLAINS_BLOCKED = "explains_blocked"


def explain_blocked(
    config: PipelineConfig,
    task: str,
    outcome: TaskOutcome,
    context: AssetExecutionContext,
    *,
    run_deadline: float | None,
    forward: Callable[[int, str], None],
) -> None:
    """Run the tasks that explain ``task``'s failed blocking checks (see the module doc)."""
    failed = [check.name for check in outcome.failed_blocking_checks]
    if not failed:
        return
    graph = TaskDependencyGraph(config)
    stopped = set(graph.get_downstream(task))
    blocked = tuple(f"{task}:{name}" for name in failed)
    for view in graph.get_execution_order():
        if view not in stopped or not config.specs[view].explains_failures:
            continue
        if not selects(context.run, view):
            continue
        policy = input_policy(config, view, context)
        policy = replace(
            policy,
            allow_failed_checks=policy.allow_failed_checks | {task},
            absent=frozenset(stopped & set(config.settings.tasks[view].depends_on)),
        )
        context.log.info(
            f"'{task}' failed its blocking check(s) {', '.join(failed)}: writing '{view}' "
            "anyway so the run explains itself (kept for inspection, not published as latest)"
        )
        try:
            written = run_task(
                config,
                view,
                context.run.run_id,
                forward=forward,
                run_deadline=run_deadline,
                inputs_from=policy,
                partition_key=context.partition_key if context.has_partition_key else None,
                blocked_upstream=blocked,
            )
        except TaskFailure as failure:
            context.log.warning(f"could not write '{view}' for this stopped run: {failure}")
            continue
        metadata = materialization_metadata(config.specs[view], written)
        metadata[EXPLAINS_BLOCKED] = MetadataValue.text(", ".join(blocked))
        context.log_event(
            AssetMaterialization(
                asset_key=AssetKey(view),
                description=f"written after {', '.join(blocked)} failed; not deployable",
                metadata=metadata,
            )
        )
