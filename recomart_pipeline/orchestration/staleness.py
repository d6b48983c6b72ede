"""Which tasks an incremental run (``run --only-stale``) executes, and why each other is reused.

Staleness is Dagster's own answer: ``CachingStaleStatusResolver`` is what the UI's "stale"
badge and ``RunRequest(stale_assets_only=True)`` use. It compares each asset's code version
(``PipelineConfig.task_code_version``: the task's settings, its ``config:`` block included,
and its implementation) and the data versions of its upstream assets (the hash of their
outputs, orchestration.metadata.data_version) with the provenance recorded at the asset's
last materialization; an asset never materialized is MISSING. Using it keeps the CLI and the
UI in agreement, and it needs no project record of its own.

External sources are Dagster's too: ingestion depends on the observable source asset
``sources/ingestion`` (orchestration.source_assets), whose data version is the fingerprint of
the files it reads. Dagster sees a change only once the source is observed, so planning first
records an observation of every source whose fingerprint moved since the last one; the task
is then stale because "upstream data changed", which is what the UI shows too.

Two things Dagster cannot see are added from the project's records:

- **Usable outputs.** A task is reused only if its ``latest`` checkpoint is the one that
  materialization published, with no newer output that failed its blocking checks, and its
  files still exist: that checkpoint is what its dependents will read.
- **Launchpad values.** A run with task config set in the launchpad records the YAML's code
  version; its outputs do not match the YAML, so such a task is stale.

Dagster's status is not transitive (a dependent of a stale task stays fresh until the task
has new data; a changed source shows everywhere at once only because every task depends on
its ancestors' sources, orchestration.source_assets), but the dependents of a task that runs
read its new outputs, so the run executes the stale tasks and everything downstream of them,
as make and DVC do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, EventLogEntry
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
from dagster._core.definitions.data_version import (
    CachingStaleStatusResolver,
    StaleCause,
    StaleCauseCategory,
    StaleStatus,
)
from dagster._core.definitions.temporal_context import TemporalContext
from dagster._time import get_current_datetime

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.graph import TaskDependencyGraph
from recomart_pipeline.orchestration.factory import build_definitions
from recomart_pipeline.orchestration.source_assets import (
    SOURCE_KEY_PREFIX,
    UNREADABLE,
    observe_changed_sources,
)
from recomart_pipeline.runtime.artifacts import ArtifactStore
from recomart_pipeline.runtime.object_store import object_store_for


@dataclass(frozen=True)
class Freshness:
    """The plan of an incremental run: tasks to execute (-> why) and tasks reused (-> the run
    whose outputs they keep), both in execution order."""

    stale: dict[str, str] = field(default_factory=dict)
    fresh: dict[str, str] = field(default_factory=dict)


def _last_materialization(
    instance: DagsterInstance, task: str, partition_key: str | None
) -> EventLogEntry | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=AssetKey(task), asset_partitions=[partition_key] if partition_key else None
        ),
        limit=1,
    ).records
    return records[0].event_log_entry if records else None


def _cause_text(cause: StaleCause, observed: dict[str, str]) -> str:
    """The run table's words for Dagster's cause; ``observed``: task -> its sources' data
    version as just observed."""
    if cause.category == StaleCauseCategory.CODE:
        return "its config or implementation changed (new code version)"
    dependency_key = cause.dependency_asset_key
    if dependency_key is not None and dependency_key.path[0] == SOURCE_KEY_PREFIX:
        if observed.get(dependency_key.path[-1]) == UNREADABLE:
            return "its source data cannot be fingerprinted now"
        return "its source data changed"
    if cause.dependency_asset_key is not None:
        dependency = cause.dependency_asset_key.to_user_string()
        if cause.category == StaleCauseCategory.DEPENDENCIES:
            return f"its dependency on '{dependency}' changed"
        return f"upstream '{dependency}' has new data"
    return cause.reason


def _own_reason(
    instance: DagsterInstance,
    store: ArtifactStore,
    task: str,
    entry: EventLogEntry,
    partition_key: str | None,
) -> str | None:
    """Why a task Dagster calls fresh must still run, from the project's records; or None."""
    run_id = entry.run_id
    run = instance.get_run_by_id(run_id)
    ops = run.run_config.get("ops") if run else None
    if isinstance(ops, dict) and (ops.get(task) or {}).get("config"):
        return f"run {run_id} set its config in the launchpad"
    if store.blocked_pointer(task, partition_key).exists():
        return "its newest output failed a blocking check"
    checkpoint = store.find_checkpoint(task, None, partition_key)
    if checkpoint is None:
        return "no checkpoint of it in storage"
    if checkpoint.run_id != run_id:
        return f"its latest output is from run {checkpoint.run_id}, not materialized by Dagster"
    if store.remote is None and not all(r.path.exists() for r in checkpoint.artifacts.values()):
        return f"the outputs of run {run_id} are gone from storage"
    return None


def plan_incremental_run(
    config: PipelineConfig,
    instance: DagsterInstance,
    selection: Sequence[str] | None = None,
    partition_key: str | None = None,
) -> Freshness:
    """Split the tasks that would run (``selection``, default all) into stale and fresh."""
    graph = TaskDependencyGraph(config)
    observed = observe_changed_sources(config, instance, graph.get_execution_order())
    asset_graph = build_definitions(config).resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    resolver = CachingStaleStatusResolver(instance, asset_graph, loading_context=view)
    store = ArtifactStore(config.storage_root, object_store_for(config))
    plan = Freshness()
    for task in graph.get_execution_order():
        if selection and task not in selection:
            continue
        reason = _stale_reason(
            instance, resolver, store, graph, plan, task, partition_key, observed
        )
        if reason is None:
            entry = _last_materialization(instance, task, partition_key)
            assert entry is not None, "a fresh asset has a materialization"
            plan.fresh[task] = entry.run_id
        else:
            plan.stale[task] = reason
    return plan


def _stale_reason(
    instance: DagsterInstance,
    resolver: CachingStaleStatusResolver,
    store: ArtifactStore,
    graph: TaskDependencyGraph,
    plan: Freshness,
    task: str,
    partition_key: str | None,
    observed: dict[str, str],
) -> str | None:
    running = [dep for dep in graph.dependencies[task] if dep in plan.stale]
    if running:
        return f"upstream '{running[0]}' runs"
    status = resolver.get_status(AssetKey(task), partition_key)
    if status == StaleStatus.MISSING:
        return "never materialized"
    if status == StaleStatus.STALE:
        causes = resolver.get_stale_causes(AssetKey(task), partition_key)
        return _cause_text(causes[0], observed) if causes else "Dagster reports it stale"
    entry = _last_materialization(instance, task, partition_key)
    if entry is None:
        return "never materialized"
    return _own_reason(instance, store, task, entry, partition_key)
