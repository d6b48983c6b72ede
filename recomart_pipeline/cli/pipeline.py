"""Commands that check or run the pipeline: validate, plan, run, backfill, task.

Dagster, the task runtime and everything they pull in are imported inside the command bodies,
so ``validate`` and ``plan`` start without them.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import click

from recomart_pipeline.cli.options import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    ListOption,
    ListOptionCommand,
    config_file_options,
    config_option,
    verbose_option,
)
from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.config.schema import RetryPolicySection
from recomart_pipeline.graph import TaskDependencyGraph


@click.command("validate")
@config_file_options
@click.option(
    "--no-data",
    is_flag=True,
    help="do not open the data files (by default their head is checked: they exist, have "
    "the columns the tasks need, and readable times)",
)
def validate(config: PipelineConfig, no_data: bool) -> int:
    """check a config file (and the head of its data files) and list every error

    FILE defaults to $PIPELINE_CONFIG, else ./pipeline_config.yaml.
    """
    if not no_data:
        config.check_data()
    runnable = TaskDependencyGraph(config).get_execution_order()
    for note in config.notes:
        print(note)
    print(
        f"{config.path.name}: valid ({len(config.settings.tasks)} tasks, {len(runnable)} will run)"
    )
    return EXIT_OK


def _plan_text(config: PipelineConfig) -> str:
    graph = TaskDependencyGraph(config)
    settings = config.settings
    policy = settings.retry_policy
    lines = [
        *config.notes,
        f"pipeline {config.name} ({settings.pipeline.environment}) from {config.path}",
        f"mode: {settings.execution.mode}; run timeout: {settings.execution.timeout_seconds or 'none'}"
        f"; continue_on_error: {settings.execution.continue_on_error}",
        _engine_text(config, graph.get_execution_order()),
        _waits_text(policy),
        "",
        "execution order:",
    ]
    for index, task in enumerate(graph.get_execution_order(), 1):
        info = graph.get_task_info(task)
        retries = info["retry_count"]
        waits = ", ".join(
            f"{policy.wait_seconds(info['retry_delay'], n):g}s" for n in range(1, retries + 1)
        )
        implementation = config.specs[task].reference
        engine = config.engine_of(task)
        own = f" engine={engine}" if engine != settings.execution.engine else ""
        lines.append(
            f"  {index:>2}. {task:<16} timeout={info['timeout'] or 'none'} retries={retries}"
            f"{f' (waits {waits})' if waits else ''} deps={info['dependencies'] or '-'}{own} [{implementation}]"
        )
    lines.append("")
    lines.append("parallel groups:")
    for index, group in enumerate(graph.get_parallel_groups(), 1):
        lines.append(f"  {index}. {', '.join(group)}")
    skipped = graph.get_skipped_tasks()
    lines.append("")
    lines.append("skipped:" if skipped else "skipped: none")
    for task, reason in skipped.items():
        lines.append(f"  - {task}: {reason}")
    return "\n".join(lines)


def _engine_text(config: PipelineConfig, order: list[str]) -> str:
    """The default engine, its Spark settings (secrets masked) and the tasks it runs."""
    execution = config.settings.execution
    where = ""
    if execution.engine == "spark":
        spark = config.to_dict()["execution"]["spark"]  # secrets masked
        conf = ", ".join(f"{k}={v}" for k, v in spark["conf"].items())
        scratch = f", scratch {spark['scratch']}" if spark["scratch"] else ""
        where = (
            f"master {spark['master']}, app {spark['app_name']}{f', conf {conf}' if conf else ''}"
            f"{scratch}; "
        )
    if execution.engine == "pandas":
        return "engine: pandas (the reference; docs/engines.md)"
    on_it = [name for name in order if config.engine_of(name) == execution.engine]
    runs = f"runs {', '.join(on_it)}" if on_it else "runs no task of this config"
    return f"engine: {execution.engine} ({where}{runs}; docs/engines.md)"


def _waits_text(policy: RetryPolicySection) -> str:
    """How retry_delay becomes the waits listed per task (the guide's "wait N seconds")."""
    if not policy.use_exponential_backoff:
        growth = "retry_delay before every retry"
    else:
        growth = f"retry_delay × {policy.backoff_base:g}^(retry - 1)"
    jitter = f", ±{policy.jitter:.0%} jitter" if policy.jitter else ""
    return f"retry waits: {growth}, at most {policy.max_backoff:g}s{jitter} (retry_policy)"


@click.command("plan")
@config_file_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable plan")
def plan(config: PipelineConfig, as_json: bool) -> int:
    """dry run: order, parallel groups, timeouts, retries, skips

    FILE defaults to $PIPELINE_CONFIG, else ./pipeline_config.yaml.
    """
    if as_json:
        graph = TaskDependencyGraph(config)
        payload = {
            "notes": config.notes,
            "engine": config.settings.execution.engine,
            **(
                {"spark": config.to_dict()["execution"]["spark"]}
                if config.settings.execution.engine == "spark"
                else {}
            ),
            "engines": {t: config.engine_of(t) for t in config.settings.tasks},
            "execution_order": graph.get_execution_order(),
            "parallel_groups": graph.get_parallel_groups(),
            "skipped": graph.get_skipped_tasks(),
            "tasks": {t: graph.get_task_info(t) for t in config.settings.tasks},
        }
        print(json.dumps(payload, indent=2))
    else:
        print(_plan_text(config))
    return EXIT_OK


@click.command("run", cls=ListOptionCommand)
@config_file_options
@click.option(
    "--partition", metavar="YYYY-MM-DD", help="run one daily partition (partitioned pipelines)"
)
@click.option(
    "--resume",
    metavar="RUN_ID",
    help="re-execute a failed run from its failure, reusing what succeeded",
)
@click.option(
    "--select",
    "selection",
    cls=ListOption,
    metavar="TASK [TASK ...]",
    help="materialize only these tasks",
)
@click.option(
    "--allow-failed-checks",
    "allow_failed",
    cls=ListOption,
    metavar="TASK [TASK ...]",
    help="let tasks read these upstream outputs even though their blocking checks failed "
    "(recorded in the run's tags and manifest)",
)
@click.option(
    "--only-stale/--all-tasks",
    "only_stale",
    default=None,
    help="run only the tasks whose config, code version, input data or source files changed "
    "since their last successful materialization, and their dependents; the rest are SKIPPED "
    "as up to date (default: execution.only_stale, false)",
)
@verbose_option
def run(
    config: PipelineConfig,
    partition: str | None,
    resume: str | None,
    selection: tuple[str, ...],
    allow_failed: tuple[str, ...],
    only_stale: bool | None,
    verbose: bool,
) -> int:
    """materialize the pipeline through Dagster (persistent local home)

    FILE defaults to $PIPELINE_CONFIG, else ./pipeline_config.yaml.
    """
    from recomart_pipeline.orchestration.automation import partitions_for
    from recomart_pipeline.orchestration.execution import (
        format_report,
        project_instance,
        run_pipeline,
    )
    from recomart_pipeline.orchestration.inputs import ALLOW_FAILED_CHECKS_TAG
    from recomart_pipeline.orchestration.watchdog import fail_dead_runs

    for option, names in (("--select", selection), ("--allow-failed-checks", allow_failed)):
        unknown = [s for s in names if s not in config.settings.tasks]
        if unknown:
            print(f"unknown task(s) in {option}: {', '.join(unknown)}", file=sys.stderr)
            return EXIT_CONFIG
    skipped = TaskDependencyGraph(config).get_skipped_tasks()
    not_runnable = [s for s in selection if s in skipped]
    if not_runnable:
        print(
            f"cannot select skipped task(s): {', '.join(f'{t} ({skipped[t]})' for t in not_runnable)}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if only_stale and resume:
        print(
            "--only-stale and --resume exclude each other: a resume re-runs what failed",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if only_stale is None:  # the config's default; a resume decides its tasks itself
        only_stale = config.settings.execution.only_stale and not resume
    if only_stale and partition is None and partitions_for(config) is not None:
        print(
            "--only-stale on a partitioned pipeline needs --partition: staleness is per partition",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    for dead in fail_dead_runs(config, project_instance(config)):
        print(f"watchdog: run {dead.run_id} had a dead worker; marked failed", flush=True)
    print(f"running {config.name} from {config.path}", flush=True)
    report = run_pipeline(
        config,
        list(selection) or None,
        progress=lambda line: print(line, flush=True),
        resume_run_id=resume,
        partition_key=partition,
        extra_tags={ALLOW_FAILED_CHECKS_TAG: json.dumps(sorted(allow_failed))}
        if allow_failed
        else None,
        only_stale=only_stale,
        verbose=verbose,
    )
    print(format_report(report))
    return EXIT_OK if report.success else EXIT_FAILED


@click.command("backfill")
@click.option("--from", "start", required=True, metavar="YYYY-MM-DD", help="first partition")
@click.option("--to", "end", required=True, metavar="YYYY-MM-DD", help="last partition")
@config_option
@verbose_option
def backfill(config: PipelineConfig, start: str, end: str, verbose: bool) -> int:
    """run a range of daily partitions

    One partition after the other, without the daemon (the UI's backfill also works).
    """
    from recomart_pipeline.orchestration.execution import (
        format_report,
        partition_keys,
        run_pipeline,
    )

    try:
        keys = partition_keys(config, start, end)
    except ValueError as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    failed = []
    for key in keys:
        print(f"partition {key}", flush=True)
        report = run_pipeline(
            config,
            partition_key=key,
            progress=lambda line: print(line, flush=True),
            verbose=verbose,
        )
        print(format_report(report), flush=True)
        if not report.success:
            failed.append(key)
    print(
        f"backfill of {len(keys)} partition(s): {len(keys) - len(failed)} succeeded"
        + (f", failed: {', '.join(failed)}" if failed else "")
    )
    return EXIT_FAILED if failed else EXIT_OK


def _parse_inputs(values: Sequence[str]) -> dict[str, Path]:
    inputs: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--input expects NAME=PATH (got {value!r})")
        if not Path(path).exists():
            raise SystemExit(f"--input {name}: no such file {path}")
        inputs[name] = Path(path)
    return inputs


@click.command("task")
@click.argument("name")
@config_option
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=PATH",
    help="use this file as input artifact NAME instead of the checkpoints (repeatable)",
)
@click.option(
    "--output", metavar="DIR", type=click.Path(), help="write outputs under DIR instead of storage"
)
@click.option(
    "--allow-failed-checks",
    "allow_failed",
    is_flag=True,
    help="read upstream outputs even if their blocking checks failed (recorded in the manifest)",
)
@verbose_option
def task(
    config: PipelineConfig,
    name: str,
    inputs: tuple[str, ...],
    output: str | None,
    allow_failed: bool,
    verbose: bool,
) -> int:
    """run one task outside Dagster, for debugging

    NAME is a task name from the config.
    """
    from recomart_pipeline.contract.errors import UpstreamArtifactError
    from recomart_pipeline.contract.files import sha256_file
    from recomart_pipeline.observers import install_observers
    from recomart_pipeline.runtime.artifacts import (
        ArtifactRecord,
        ArtifactStore,
        Checkpoint,
        InputPolicy,
    )
    from recomart_pipeline.runtime.attempt import reads
    from recomart_pipeline.runtime.object_store import ObjectStoreError, object_store_for
    from recomart_pipeline.runtime.runner import TaskFailure, run_task
    from recomart_pipeline.runtime.task_logging import console_forward

    install_observers()
    if name not in config.settings.tasks:
        print(
            f"unknown task '{name}' (known: {', '.join(config.settings.tasks)})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        if inputs:
            records = {
                n: ArtifactRecord(n, p.resolve(), sha256_file(p), p.stat().st_size)
                for n, p in _parse_inputs(inputs).items()
            }
            upstream = {"cli": Checkpoint("cli", "cli", records)}
        else:
            main_store = ArtifactStore(config.storage_root, object_store_for(config))
            deps = config.settings.tasks[name].depends_on
            policy = InputPolicy(
                runs=(), allow_failed_checks=frozenset(deps if allow_failed else ())
            )
            upstream = {
                dep: main_store.load_upstream(
                    dep,
                    policy,
                    warn=lambda m: print(f"warning: {m}", file=sys.stderr),
                    reads=reads(config.specs[name]),
                )
                for dep in deps
            }
    except (UpstreamArtifactError, ObjectStoreError) as exc:
        print(f"FAILED ({exc.error_class}): {exc}", file=sys.stderr)
        return EXIT_FAILED
    store = ArtifactStore(Path(output).resolve()) if output else None
    run_id = f"cli-{uuid.uuid4().hex[:12]}"
    try:
        outcome = run_task(
            config,
            name,
            run_id,
            upstream=upstream,
            store=store,
            forward=console_forward(name, verbose),
        )
    except TaskFailure as failure:
        print(f"FAILED ({failure.error_class}): {failure.message}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{name}: SUCCESS in {outcome.duration_s:.2f}s (run {run_id})")
    for artifact, record in outcome.checkpoint.artifacts.items():
        print(f"  {artifact}: {record.path}")
    for check in outcome.result.checks:
        print(f"  check {check.name}: {'passed' if check.passed else 'FAILED'} ({check.severity})")
    if outcome.result.metrics:
        print("  metrics: " + json.dumps(outcome.result.metrics, default=str))
    return EXIT_FAILED if outcome.failed_blocking_checks else EXIT_OK
