"""Running the generated job from Python and from the project CLI.

Runs go to the project's persistent Dagster home (``storage.dagster_home``) so they show up
later in ``dagster dev``. The job is rebuilt from the config path in every process
(``build_reconstructable_job``) so the multiprocess executor works from the CLI too.
"""

import fcntl
import hashlib
import json
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    EventLogEntry,
    JobDefinition,
    ReexecutionOptions,
    RunsFilter,
    build_reconstructable_job,
    execute_job,
)
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.execution.plan.objects import StepFailureData
from dagster._core.execution.stats import RunStepKeyStatsSnapshot

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.config.overrides import parse_override
from recomart_pipeline.contract.status import FAILED, TaskStatus
from recomart_pipeline.graph import TaskDependencyGraph
from recomart_pipeline.orchestration.assets import FAIL_FAST_MESSAGE, OVERRIDES_TAG
from recomart_pipeline.orchestration.automation import partitions_for
from recomart_pipeline.orchestration.factory import JOB_NAME, build_definitions
from recomart_pipeline.orchestration.inputs import run_lineage
from recomart_pipeline.orchestration.instance import install_dagster_yaml
from recomart_pipeline.orchestration.notifications import alert_finished_run
from recomart_pipeline.orchestration.source_assets import source_keys_for
from recomart_pipeline.orchestration.staleness import Freshness, plan_incremental_run
from recomart_pipeline.runtime.task_logging import console_text

RUN_TOKEN_TAG = "recomart/cli_token"


def load_job(config_path: str, overrides: list[str] | None = None) -> JobDefinition:
    """Reconstructor used in every process of a run (must stay a module-level function)."""
    config = PipelineConfig(config_path, overrides=overrides or ())
    return build_definitions(config).resolve_job_def(JOB_NAME)


def worker_overrides(config: PipelineConfig) -> list[str]:
    """The overrides as the run's worker processes receive them.

    Dagster stores a job's reconstructable arguments in its run storage, so an override that
    carries a secret (``--set notifications.email.password=…``) travels in an environment
    variable of this process instead, which the run's worker processes inherit and nothing
    stores; the argument names the variable (``…password=${RECOMART_SET_1A2B…}``).
    """
    overrides = []
    for index, text in enumerate(config.overrides, start=1):
        if config.redact(text) == text:
            overrides.append(text)
            continue
        path, value = parse_override(text, index)
        key = ".".join(path)
        variable = "RECOMART_SET_" + hashlib.sha256(key.encode()).hexdigest()[:12].upper()
        os.environ[variable] = value if isinstance(value, str) else json.dumps(value)
        overrides.append(f"{key}=${{{variable}}}")
    return overrides


def project_instance(config: PipelineConfig) -> DagsterInstance:
    """The persistent instance in ``$DAGSTER_HOME`` or the project's ``storage.dagster_home``."""
    home = Path(os.environ.get("DAGSTER_HOME") or config.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    # Two first runs at once would both create the SQLite schema and race (alembic
    # "more than one head"); serialise creating the home and its storage.
    with (home / ".init.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        install_dagster_yaml(home)
        instance = DagsterInstance.get()
        instance.get_runs(limit=1)
        fcntl.flock(lock, fcntl.LOCK_UN)
    return instance


@dataclass(frozen=True)
class TaskRow:
    task: str
    status: str
    duration_s: float | None
    attempts: int
    detail: str = ""


@dataclass(frozen=True)
class RunReport:
    """A run's outcome; ``run_id`` is None when an incremental run found nothing to do."""

    run_id: str | None
    success: bool
    rows: list[TaskRow]


_PROGRESS_EVENTS = {
    DagsterEventType.STEP_START: "started",
    DagsterEventType.STEP_SUCCESS: "succeeded",
    DagsterEventType.STEP_FAILURE: "FAILED",
    DagsterEventType.STEP_UP_FOR_RETRY: "will retry",
    DagsterEventType.STEP_SKIPPED: "skipped",
    DagsterEventType.ASSET_CHECK_EVALUATION: "check",
}


class _ProgressPrinter(threading.Thread):
    """Prints the run carrying ``token`` while it executes (polls the DB): step events, and
    each task log event as one short line (whole, JSON fields included, with ``verbose``).

    Dagster's own console logger is turned down to CRITICAL for such runs: it would print
    the same events again as long lines of inline JSON. Everything stays in Dagster's event
    log (the UI) and in the task log files.
    """

    def __init__(
        self,
        instance: DagsterInstance,
        token: str,
        emit: Callable[[str], None],
        verbose: bool = False,
    ) -> None:
        super().__init__(daemon=True)
        self.instance = instance
        self.token = token
        self.emit = emit
        self.verbose = verbose
        self.done = threading.Event()
        self.run_id: str | None = None
        self.cursor: str | None = None

    def run(self) -> None:
        while not self.done.wait(0.25):
            self.drain()
        self.drain()

    def drain(self) -> None:
        if self.run_id is None:
            runs = self.instance.get_runs(RunsFilter(tags={RUN_TOKEN_TAG: self.token}), limit=1)
            if not runs:
                return
            self.run_id = runs[0].run_id
            self.emit(f"run {self.run_id} started")
        result = self.instance.get_records_for_run(self.run_id, cursor=self.cursor)
        self.cursor = result.cursor
        for record in result.records:
            line = self.line(record.event_log_entry)
            if line is not None:
                self.emit(f"  {record.event_log_entry.step_key or '':<14} {line}")

    def line(self, entry: EventLogEntry) -> str | None:
        event = entry.dagster_event
        level = entry.level if isinstance(entry.level, int) else logging.getLevelName(entry.level)
        if event is None:  # a log message: the task's own events, or Dagster's warnings
            if level < (logging.INFO if entry.step_key else logging.WARNING):
                return None
            prefix = "" if level < logging.WARNING else f"{logging.getLevelName(level).lower()}: "
            text = console_text(entry.user_message, self.verbose, step_line_shown=True)
            return None if text is None else prefix + text
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.asset_check_evaluation_data
            return f"check {data.check_name}: {'passed' if data.passed else 'FAILED'}"
        if event.event_type == DagsterEventType.STEP_FAILURE:
            text = _failure_message(event.step_failure_data)
            return f"FAILED: {text if self.verbose else _first_line(text)}".rstrip(": ")
        if event.event_type in _PROGRESS_EVENTS:
            return _PROGRESS_EVENTS[event.event_type]
        if level >= logging.WARNING:
            return _first_line(event.message or event.event_type_value)
        return None


def _failure_message(data: StepFailureData) -> str:
    """What a step failure says: our runtime's description when it gave one, else the error."""
    if data.user_failure_data and data.user_failure_data.description:
        return data.user_failure_data.description.strip()
    return data.error.message.strip() if data.error else ""


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


def run_pipeline(
    config: PipelineConfig,
    selection: Sequence[str] | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    extra_tags: dict[str, str] | None = None,
    resume_run_id: str | None = None,
    partition_key: str | None = None,
    quiet: bool = False,
    only_stale: bool = False,
    verbose: bool = False,
) -> RunReport:
    """Materialize the job (or ``selection``) through Dagster in this process tree.

    ``resume_run_id`` re-executes a failed run from its failure (Dagster's re-execution):
    tasks that succeeded are not run again, and the re-run tasks read their verified
    checkpoints. ``quiet`` keeps Dagster's console log to warnings; with ``progress`` the
    printer's lines replace it.
    ``progress`` receives the run's progress lines, task log events as short lines (whole
    with ``verbose``). ``only_stale`` runs only the tasks that are stale and their dependents
    (orchestration.staleness); the others are reported SKIPPED with the run they reuse, and
    when nothing is stale no Dagster run is created.
    """
    graph = TaskDependencyGraph(config)
    instance = project_instance(config)
    plan = Freshness()
    if only_stale:
        plan = plan_incremental_run(config, instance, selection, partition_key)
        if not plan.stale:
            return RunReport(None, True, _task_rows(instance, None, graph, selection, plan))
        selection = list(plan.stale)
    token = uuid.uuid4().hex
    recon = automated_pipeline_job_for(config)
    printer = _ProgressPrinter(instance, token, progress, verbose) if progress else None
    if printer:
        printer.start()
    if str(config.project_root) not in sys.path:
        sys.path.insert(0, str(config.project_root))
    try:
        with execute_job(
            recon,
            instance=instance,
            # Our progress lines replace Dagster's console stream (_ProgressPrinter); quiet
            # runs without them still show Dagster's warnings.
            run_config={
                "loggers": {
                    "console": {"config": {"log_level": "CRITICAL" if progress else "WARNING"}}
                }
            }
            if progress or quiet
            else None,
            tags={
                RUN_TOKEN_TAG: token,
                **({OVERRIDES_TAG: json.dumps(config.safe_overrides)} if config.overrides else {}),
                **({"dagster/partition": partition_key} if partition_key else {}),
                **(extra_tags or {}),
            },
            asset_selection=[AssetKey(s) for s in selection]
            + source_keys_for(config, list(selection))
            if selection
            else None,
            reexecution_options=ReexecutionOptions.from_failure(resume_run_id, instance)
            if resume_run_id
            else None,
        ) as result:
            run_id = result.run_id
            success = result.success
        alert_finished_run(config, instance, run_id)  # unless the run's executor or the daemon did
    finally:
        if printer:
            printer.done.set()
            printer.join()
    return RunReport(run_id, success, _task_rows(instance, run_id, graph, selection, plan))


def _failures(instance: DagsterInstance, run_id: str) -> dict[str, tuple[str, str | None]]:
    """Step -> (first line of its failure, our error class if the runtime classified it)."""
    failures: dict[str, tuple[str, str | None]] = {}
    for record in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.STEP_FAILURE
    ).records:
        event = record.event_log_entry.dagster_event
        if not (event and event.step_key):
            continue
        data = event.step_failure_data
        klass = (
            data.user_failure_data.metadata.get("error_class") if data.user_failure_data else None
        )
        failures[event.step_key] = (
            _first_line(_failure_message(data)),
            getattr(klass, "value", None),
        )
    return failures


def _written_by_other_steps(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """Task -> step that wrote it instead of its own step (failure_views: the report of a
    run stopped by a blocking check is written by the step whose check failed)."""
    written: dict[str, str] = {}
    for record in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
    ).records:
        event = record.event_log_entry.dagster_event
        if not (event and event.step_key and event.asset_key):
            continue
        task = event.asset_key.to_user_string()
        if task != event.step_key:
            written[task] = event.step_key
    return written


def _reused_from(instance: DagsterInstance, ancestors: Sequence[str], task: str) -> str | None:
    """The nearest resumed run in which ``task`` succeeded (a resume reuses that output)."""
    for run_id in ancestors:
        for stat in instance.get_run_step_stats(run_id, step_keys=[task]):
            if stat.status and stat.status.value == TaskStatus.SUCCESS:
                return run_id
    return None


def _task_rows(
    instance: DagsterInstance,
    run_id: str | None,
    graph: TaskDependencyGraph,
    selection: Sequence[str] | None,
    plan: Freshness,
) -> list[TaskRow]:
    """One row per task in the guide's status words (contract.status), each with its why.

    In an incremental run (``plan``) a task that was up to date is SKIPPED with the run
    whose outputs it reuses, and a task that ran says why it was stale.
    """
    stats = {s.step_key: s for s in instance.get_run_step_stats(run_id)} if run_id else {}
    failures = _failures(instance, run_id) if run_id else {}
    skipped_candidates = _skipped_candidates(instance, run_id) if run_id else {}
    run = instance.get_run_by_id(run_id) if run_id else None
    ancestors = (
        run_lineage(instance, run_id, run.parent_run_id if run else None)[1:] if run_id else ()
    )
    written_by = _written_by_other_steps(instance, run_id) if run_id else {}
    rows: dict[str, TaskRow] = {}
    for task in graph.dependencies:
        if task in plan.fresh:
            rows[task] = TaskRow(
                task, TaskStatus.SKIPPED, None, 0, f"up to date, reusing run {plan.fresh[task]}"
            )
            continue
        if selection and task not in selection:
            continue
        if task in written_by:
            why = f"written after '{written_by[task]}' failed its blocking checks (kept for inspection)"
            rows[task] = TaskRow(task, TaskStatus.SUCCESS, None, 1, why)
            continue
        rows[task] = _task_row(task, graph, stats.get(task), failures, rows, instance, ancestors)
        if task in skipped_candidates and not rows[task].detail:
            rows[task] = replace(rows[task], detail=skipped_candidates[task])
        if task in plan.stale and not rows[task].detail:
            rows[task] = replace(rows[task], detail=f"stale: {plan.stale[task]}")
    return list(rows.values())


def _task_row(
    task: str,
    graph: TaskDependencyGraph,
    stat: RunStepKeyStatsSnapshot | None,
    failures: dict[str, tuple[str, str | None]],
    rows: dict[str, TaskRow],
    instance: DagsterInstance,
    ancestors: Sequence[str],
) -> TaskRow:
    skip = graph.get_skipped_tasks().get(task)
    if skip:
        return TaskRow(task, TaskStatus.SKIPPED, None, 0, skip)
    failed_deps = [
        dep
        for dep in graph.dependencies[task]
        if dep in rows and rows[dep].status in (*FAILED, TaskStatus.SKIPPED)
    ]
    if stat is None or stat.status is None or stat.status.value == "SKIPPED":
        if stat is None and (origin := _reused_from(instance, ancestors, task)):
            return TaskRow(task, TaskStatus.SUCCESS, None, 0, f"reused from run {origin}")
        if failed_deps:
            why = f"not started: dependency '{failed_deps[0]}' did not succeed"
        else:
            why = "not started: the run stopped before it"
        return TaskRow(task, TaskStatus.SKIPPED, None, 0, why)
    duration = stat.end_time - stat.start_time if stat.end_time and stat.start_time else None
    attempts = max(1, len(stat.attempts_list or []))
    message, error_class = failures.get(task, ("", None))
    if message.startswith(FAIL_FAST_MESSAGE):
        return TaskRow(task, TaskStatus.SKIPPED, None, 0, message)
    if stat.status.value == "SUCCESS":
        return TaskRow(task, TaskStatus.SUCCESS, duration, attempts, message)
    status = TaskStatus.TIMEOUT if error_class == "timeout" else TaskStatus.FAILURE
    return TaskRow(task, status, duration, attempts, message)


def _skipped_candidates(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """``skipped svd, bias (…)`` for a task that skipped candidates (its ``skipped`` metadata:
    candidate -> reason), so the run table says why a model is missing."""
    details: dict[str, str] = {}
    for record in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
    ).records:
        event = record.event_log_entry.dagster_event
        materialization = event.step_materialization_data.materialization if event else None
        value = materialization.metadata.get("skipped") if materialization else None
        skipped = getattr(value, "value", None)
        if event and event.step_key and isinstance(skipped, dict) and skipped:
            first = next(iter(skipped.values()))
            details[event.step_key] = f"skipped {', '.join(skipped)} ({first})"
    return details


def partition_keys(config: PipelineConfig, first: str, last: str) -> list[str]:
    """The daily partition keys from ``first`` to ``last`` (inclusive), checked to exist."""
    partitions = partitions_for(config)
    if partitions is None:
        raise ValueError("scheduling.partitions.enabled is false: this pipeline has no partitions")
    keys = list(partitions.get_partition_keys())
    unknown = [k for k in (first, last) if k not in keys]
    if unknown:
        raise ValueError(
            f"no partition {', '.join(unknown)}: partitions run from {keys[0]} to {keys[-1]}"
            if keys
            else "no partitions exist yet (start_date is in the future)"
        )
    return keys[keys.index(first) : keys.index(last) + 1]


def format_report(report: RunReport) -> str:
    width = max([len(r.task) for r in report.rows] + [4])
    lines = [f"{'task':<{width}}  {'status':<9} {'duration':>9}  attempts  detail"]
    for row in report.rows:
        duration = f"{row.duration_s:.2f}s" if row.duration_s is not None else "-"
        lines.append(
            f"{row.task:<{width}}  {row.status:<9} {duration:>9}  {row.attempts:>8}  {row.detail}"
        )
    if report.run_id is None:
        lines.append(f"nothing to run: all {len(report.rows)} task(s) are up to date")
    else:
        lines.append(f"run {report.run_id}: {'SUCCESS' if report.success else 'FAILURE'}")
    return "\n".join(lines)


def execute_pipeline_programmatically(config_path: str | os.PathLike[str] | None = None) -> bool:
    """Run the whole job as the guide shows; True when every task succeeded."""
    config = PipelineConfig(config_path)
    return run_pipeline(config).success


def automated_pipeline_job_for(
    config: PipelineConfig | str | os.PathLike[str] | None = None,
) -> ReconstructableJob:
    """The pipeline's job for ``config`` in the form ``dagster.execute_job`` takes.

    The guide's "Option 4" (a custom config file, run from Python) hands ``execute_job`` a job;
    Dagster accepts only a reconstructable one, because each process of a run rebuilds the job
    itself. This is that recipe, ``load_job(config path, overrides)``, run in the config's
    project folder (as ``run_pipeline`` runs it), so it works with the multiprocess executor
    and a persistent instance as well as in process with ``DagsterInstance.ephemeral()``.
    ``config`` is a ``PipelineConfig`` (its ``--set`` overrides are kept) or a path
    (default: ``$PIPELINE_CONFIG``, else ./pipeline_config.yaml); the config is validated now.
    """
    if not isinstance(config, PipelineConfig):
        config = PipelineConfig(config)
    return build_reconstructable_job(
        "recomart_pipeline.orchestration.execution",
        "load_job",
        # dagster annotates this as tuple[object] (one element); it takes any tuple of args.
        reconstructable_args=(str(config.path), worker_overrides(config)),  # type: ignore[arg-type]
        reconstructor_working_directory=str(config.project_root),
    )
