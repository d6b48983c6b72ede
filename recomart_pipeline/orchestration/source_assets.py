"""The external data a task reads, as Dagster observable source assets upstream of it.

Ingestion reads files outside the pipeline (``data/interactions.csv``). Without anything
upstream of it, Dagster cannot tell that it is stale when such a file changes: its stale
status compares an asset's inputs' data versions with those recorded at its last
materialization, and a root asset has no inputs. So each task that declares external sources
(``TaskSpec.watched_sources``, what the data-arrival sensor watches) gets a source asset,
``sources/<task>``, that it depends on; observing it records the sources' fingerprint
(orchestration.sources, the sensor's hash) as its data version. After an observation with a
new fingerprint the UI, ``RunRequest(stale_assets_only=True)`` and ``run --only-stale`` all
show the task and everything downstream of it stale, for the same reason: "upstream data
changed".

Observations happen at the start of every whole-job run (the source assets are in the job,
and the task's step waits for them, so the data version a materialization records is the one
it read), when the data-arrival sensor sees new data, before ``run --only-stale`` plans, and
on demand (the UI's "Observe sources", ``dagster asset materialize --select 'sources/*'``).
"""

import warnings
from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    BetaWarning,
    DagsterInstance,
    DataVersion,
    ObserveResult,
    multi_observable_source_asset,
)
from dagster._core.definitions.data_version import (
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    extract_data_version_from_entry,
)

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.orchestration.sources import task_source_fingerprint

SOURCE_KEY_PREFIX = "sources"
OBSERVE_STEP = "observe_sources"  # the run's step (and op) that observes them
UNREADABLE = "unreadable"


def source_key(task: str) -> AssetKey:
    """The source asset of ``task``'s external data (two parts, so no task name collides)."""
    return AssetKey([SOURCE_KEY_PREFIX, task])


def tasks_with_sources(config: PipelineConfig, order: list[str]) -> list[str]:
    """The tasks of ``order`` that read external data, in execution order."""
    return [t for t in order if config.specs[t].watched_sources(config.task_config(t))]


def source_keys_for(config: PipelineConfig, tasks: list[str]) -> list[AssetKey]:
    """The source assets a run of ``tasks`` observes first (a ``--select`` run too, so what
    its materializations record as read is what they read)."""
    return [source_key(task) for task in tasks_with_sources(config, tasks)]


def lineage_source_keys(config: PipelineConfig, task: str, order: list[str]) -> list[AssetKey]:
    """The source assets of ``task`` and of every task upstream of it, in execution order.

    Each task asset depends on all of them (not only on its own), because Dagster's stale
    status is not transitive: with direct edges only, a changed data file shows its reading
    task stale and everything downstream fresh until that task runs again. Every asset's
    data does derive from those files, so the edges are true lineage; ``run --only-stale``
    (orchestration.staleness) reaches the same tasks from the same status.
    """
    wanted, pending = {task}, [task]
    while pending:
        for dep in config.settings.tasks[pending.pop()].depends_on:
            if dep not in wanted:
                wanted.add(dep)
                pending.append(dep)
    return source_keys_for(config, [name for name in order if name in wanted])


def source_data_version(config: PipelineConfig, task: str) -> str:
    """The data version of ``task``'s sources now: their fingerprint, or ``unreadable``
    when one cannot be reached (a version that never equals a readable one, so a task that
    read them before is stale, and once they are back it is stale again)."""
    return task_source_fingerprint(config, task) or UNREADABLE


def build_source_assets(config: PipelineConfig, order: list[str]) -> list[AssetsDefinition]:
    """One observable asset per task of ``order`` that reads external data (none if none)."""
    tasks = tasks_with_sources(config, order)
    if not tasks:
        return []
    specs = [
        AssetSpec(
            key=source_key(task),
            description=f"The external data '{task}' reads: "
            + ", ".join(config.specs[task].watched_sources(config.task_config(task)))
            + ". Its data version is their fingerprint (names, sizes, content hashes).",
            group_name=config.settings.pipeline.name,
            kinds={"file"},
            metadata={"sources": config.specs[task].watched_sources(config.task_config(task))},
        )
        for task in tasks
    ]

    # The decorator is beta (and @observable_source_asset builds a deprecated SourceAsset);
    # its BetaWarning would greet every command and every run worker, about a choice made here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        decorator = multi_observable_source_asset(
            name=OBSERVE_STEP,
            specs=specs,
            can_subset=True,
            group_name=config.settings.pipeline.name,
            description="Fingerprints the files and URLs the pipeline reads.",
        )

    def observe_sources(context: AssetExecutionContext) -> Iterator[ObserveResult]:
        for task in tasks:
            key = source_key(task)
            if key not in context.selected_asset_keys:
                continue
            version = source_data_version(config, task)
            if version == UNREADABLE:
                context.log.warning(f"cannot fingerprint the sources of '{task}' now")
            yield ObserveResult(asset_key=key, data_version=DataVersion(version))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        return [decorator(observe_sources)]


def source_observations(config: PipelineConfig, order: list[str]) -> list[AssetObservation]:
    """An observation of every source asset of ``order``'s tasks, with their data versions now."""
    return [
        AssetObservation(
            asset_key=source_key(task),
            tags={
                DATA_VERSION_TAG: source_data_version(config, task),
                DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
            },
        )
        for task in tasks_with_sources(config, order)
    ]


def observe_changed_sources(
    config: PipelineConfig, instance: DagsterInstance, order: list[str]
) -> dict[str, str]:
    """Record an observation of each source asset whose data version differs from its last
    one (outside any run), so Dagster's stale status sees data that changed since; returns
    each task's sources' data version now."""
    versions = {}
    for observation in source_observations(config, order):
        key = observation.asset_key
        version = observation.tags[DATA_VERSION_TAG]
        record = instance.get_latest_data_version_record(key, is_source=True)
        last = extract_data_version_from_entry(record.event_log_entry) if record else None
        if last is None or last.value != version:
            instance.report_runless_asset_event(observation)
        versions[key.path[-1]] = version
    return versions
