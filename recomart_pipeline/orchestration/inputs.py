"""Which checkpoints a task of a Dagster run may read: the run's own, never another run's.

A whole-job run reads only what it made itself. A resumed run (Dagster re-execution) also
reads the runs it resumes, and for upstream tasks outside its selection the exact runs its
ancestors read (recorded in their manifests), so a resume never picks up a newer run's
outputs. ``latest`` is read only for upstream tasks the run did not select, which is what a
user asks for with ``run --select``. Outputs whose blocking checks failed are read only for
the tasks named in the run's ``recomart/allow_failed_checks`` tag.
"""

import json

from dagster import AssetExecutionContext, AssetKey, DagsterInstance, DagsterRun

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.runtime.artifacts import InputPolicy
from recomart_pipeline.runtime.object_store import object_store_for
from recomart_pipeline.runtime.records import read_manifest

ALLOW_FAILED_CHECKS_TAG = "recomart/allow_failed_checks"


def run_lineage(instance: DagsterInstance, run_id: str, parent: str | None) -> tuple[str, ...]:
    """This run, then the runs it re-executes, nearest first."""
    lineage = [run_id]
    while parent and parent not in lineage:
        lineage.append(parent)
        record = instance.get_run_by_id(parent)
        parent = record.parent_run_id if record else None
    return tuple(lineage)


def selects(run: DagsterRun, task: str) -> bool:
    """Whether ``run`` materializes ``task``: an empty or missing asset selection (the CLI's
    whole-job runs, ``execute_in_process``) means the whole job."""
    return not run.asset_selection or AssetKey(task) in run.asset_selection


def allowed_failed_checks(tags: dict[str, str]) -> frozenset[str]:
    raw = tags.get(ALLOW_FAILED_CHECKS_TAG)
    return frozenset(json.loads(raw)) if raw else frozenset()


def _pinned(config: PipelineConfig, task: str, ancestors: tuple[str, ...]) -> dict[str, str]:
    """Upstream task -> run that the nearest ancestor's attempt of ``task`` read it from."""
    remote = object_store_for(config)
    for run_id in ancestors:
        manifest = read_manifest(config.storage_root, run_id, remote) or {}
        input_runs = manifest.get("tasks", {}).get(task, {}).get("input_runs")
        if input_runs:
            return dict(input_runs)
    return {}


def input_policy(config: PipelineConfig, task: str, context: AssetExecutionContext) -> InputPolicy:
    run = context.run
    lineage = run_lineage(context.instance, run.run_id, run.parent_run_id)
    deps = config.settings.tasks[task].depends_on
    unselected = frozenset(dep for dep in deps if not selects(run, dep))
    return InputPolicy(
        runs=lineage,
        latest=unselected,
        pinned=_pinned(config, task, lineage[1:]) if len(lineage) > 1 else {},
        allow_failed_checks=allowed_failed_checks(dict(run.tags)),
    )
