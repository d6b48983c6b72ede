"""The project CLI: ``python -m recomart_pipeline validate|plan|run|task|schema|…``.

Exit codes follow the style guide: 0 success, 1 the run failed, 2 the config is wrong.
Config errors are printed without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from recomart_pipeline.config import ConfigError, PipelineConfig, environment_config_path
from recomart_pipeline.graph import TaskDependencyGraph

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _load(path: str | None) -> PipelineConfig:
    return PipelineConfig(path)


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load(args.file)
    graph = TaskDependencyGraph(config)
    runnable = graph.get_execution_order()
    print(
        f"{config.path.name}: valid ({len(config.settings.tasks)} tasks, {len(runnable)} will run)"
    )
    return EXIT_OK


def _plan_text(config: PipelineConfig) -> str:
    graph = TaskDependencyGraph(config)
    settings = config.settings
    policy = settings.retry_policy
    lines = [
        f"pipeline {config.name} ({settings.pipeline.environment}) from {config.path}",
        f"mode: {settings.execution.mode}; run timeout: {settings.execution.timeout_seconds or 'none'}"
        f"; continue_on_error: {settings.execution.continue_on_error}",
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
        lines.append(
            f"  {index:>2}. {task:<16} timeout={info['timeout'] or 'none'} retries={retries}"
            f"{f' (waits {waits})' if waits else ''} deps={info['dependencies'] or '-'} [{implementation}]"
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


def cmd_plan(args: argparse.Namespace) -> int:
    config = _load(args.file)
    if args.json:
        graph = TaskDependencyGraph(config)
        payload = {
            "execution_order": graph.get_execution_order(),
            "parallel_groups": graph.get_parallel_groups(),
            "skipped": graph.get_skipped_tasks(),
            "tasks": {t: graph.get_task_info(t) for t in config.settings.tasks},
        }
        print(json.dumps(payload, indent=2))
    else:
        print(_plan_text(config))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from recomart_pipeline.orchestration.execution import (
        format_report,
        project_instance,
        run_pipeline,
    )

    config = PipelineConfig(args.file, overrides=args.set)
    selection = args.select or None
    unknown = [s for s in selection or [] if s not in config.settings.tasks]
    if unknown:
        print(f"unknown task(s) in --select: {', '.join(unknown)}", file=sys.stderr)
        return EXIT_CONFIG
    skipped = TaskDependencyGraph(config).get_skipped_tasks()
    not_runnable = [s for s in selection or [] if s in skipped]
    if not_runnable:
        print(
            f"cannot select skipped task(s): {', '.join(f'{t} ({skipped[t]})' for t in not_runnable)}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    from recomart_pipeline.orchestration.watchdog import fail_dead_runs

    for dead in fail_dead_runs(config, project_instance(config)):
        print(f"watchdog: run {dead.run_id} had a dead worker; marked failed", flush=True)
    print(f"running {config.name} from {config.path}", flush=True)
    report = run_pipeline(
        config,
        selection,
        progress=lambda line: print(line, flush=True),
        resume_run_id=args.resume,
        partition_key=args.partition,
    )
    print(format_report(report))
    return EXIT_OK if report.success else EXIT_FAILED


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


def cmd_task(args: argparse.Namespace) -> int:
    """Run one task outside Dagster, for debugging (the orchestration plan's per-task CLI)."""
    from recomart_pipeline.contract.errors import UpstreamArtifactError
    from recomart_pipeline.contract.files import sha256_file
    from recomart_pipeline.observers import install_observers
    from recomart_pipeline.runtime.artifacts import ArtifactRecord, ArtifactStore, Checkpoint
    from recomart_pipeline.runtime.object_store import ObjectStoreError, object_store_for
    from recomart_pipeline.runtime.runner import TaskFailure, run_task

    install_observers()
    config = _load(args.file)
    if args.name not in config.settings.tasks:
        print(
            f"unknown task '{args.name}' (known: {', '.join(config.settings.tasks)})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        if args.input:
            files = _parse_inputs(args.input)
            records = {
                n: ArtifactRecord(n, p.resolve(), sha256_file(p), p.stat().st_size)
                for n, p in files.items()
            }
            upstream = {"cli": Checkpoint("cli", "cli", records)}
        else:
            main_store = ArtifactStore(config.storage_root, object_store_for(config))
            deps = config.settings.tasks[args.name].depends_on
            upstream = {dep: main_store.load_upstream(dep, None) for dep in deps}
    except (UpstreamArtifactError, ObjectStoreError) as exc:
        print(f"FAILED ({exc.error_class}): {exc}", file=sys.stderr)
        return EXIT_FAILED
    store = ArtifactStore(Path(args.output).resolve()) if args.output else None
    run_id = f"cli-{uuid.uuid4().hex[:12]}"
    try:
        outcome = run_task(config, args.name, run_id, upstream=upstream, store=store)
    except TaskFailure as failure:
        print(f"FAILED ({failure.error_class}): {failure.message}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.name}: SUCCESS in {outcome.duration_s:.2f}s (run {run_id})")
    for name, record in outcome.checkpoint.artifacts.items():
        print(f"  {name}: {record.path}")
    for check in outcome.result.checks:
        print(f"  check {check.name}: {'passed' if check.passed else 'FAILED'} ({check.severity})")
    if outcome.result.metrics:
        print("  metrics: " + json.dumps(outcome.result.metrics, default=str))
    return EXIT_FAILED if outcome.failed_blocking_checks else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from recomart_pipeline.config.json_schema import config_json_schema

    text = json.dumps(config_json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_backfill(args: argparse.Namespace) -> int:
    """Run each daily partition in turn (the daemon-free way; the UI's backfill also works)."""
    from recomart_pipeline.orchestration.execution import (
        format_report,
        partition_keys,
        run_pipeline,
    )

    config = _load(args.config)
    try:
        keys = partition_keys(config, args.start, args.end)
    except ValueError as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    failed = []
    for key in keys:
        print(f"partition {key}", flush=True)
        report = run_pipeline(config, partition_key=key)
        print(format_report(report), flush=True)
        if not report.success:
            failed.append(key)
    print(
        f"backfill of {len(keys)} partition(s): {len(keys) - len(failed)} succeeded"
        + (f", failed: {', '.join(failed)}" if failed else "")
    )
    return EXIT_FAILED if failed else EXIT_OK


def cmd_approve_schema(args: argparse.Namespace) -> int:
    from recomart_pipeline.contract.errors import TaskError
    from recomart_pipeline.tasks.schema_approval import approve, describe

    config = _load(args.config)
    try:
        diff = approve(config.storage_root, args.task)
    except TaskError as exc:
        print(f"approve-schema: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"approved the new schema of '{args.task}': {describe(diff)}")
    print(f"re-run (or `run --resume RUN_ID`) to continue past '{args.task}'")
    return EXIT_OK


def cmd_schedule_resume(args: argparse.Namespace) -> int:
    from recomart_pipeline.orchestration.schedule_circuit import resume_schedule

    resume_schedule(_load(args.config))
    print("schedule resumed: earlier failures no longer pause it")
    return EXIT_OK


def cmd_watchdog(args: argparse.Namespace) -> int:
    from recomart_pipeline.orchestration.execution import project_instance
    from recomart_pipeline.orchestration.watchdog import fail_dead_runs

    config = _load(args.config)
    dead = fail_dead_runs(config, project_instance(config))
    for run in dead:
        print(f"run {run.run_id}: worker dead -> marked FAILURE; killed {run.killed_children}")
    print(f"{len(dead)} dead run(s) found")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from recomart_pipeline.runtime import run_history
    from recomart_pipeline.runtime.object_store import object_store_for
    from recomart_pipeline.runtime.records import load_manifests

    config = _load(args.config)
    manifests = load_manifests(config.storage_root, object_store_for(config))
    if args.action == "show":
        found = [m for m in manifests if m["run_id"] == args.run_id]
        if not found:
            print(f"no run '{args.run_id}' under {config.storage_root / 'runs'}", file=sys.stderr)
            return EXIT_FAILED
        shown = dict(found[0])
        shown["environment_info"] = {
            k: v for k, v in shown["environment_info"].items() if k != "packages"
        } | {"packages": f"{len(found[0]['environment_info']['packages'])} recorded"}
        print(json.dumps(shown, indent=2))
        return EXIT_OK
    rows = run_history.summaries(manifests)[: args.limit]
    if args.action == "export":
        text = (
            run_history.export_csv(rows)
            if args.format == "csv"
            else run_history.export_markdown(rows)
        )
        if args.output:
            Path(args.output).write_text(text)
            print(f"wrote {len(rows)} runs to {args.output}")
        else:
            sys.stdout.write(text)
        return EXIT_OK
    print(run_history.format_table(rows))
    return EXIT_OK


def cmd_reproduce(args: argparse.Namespace) -> int:
    from recomart_pipeline.orchestration.reproduce import reproduce_run

    config = _load(args.config)
    try:
        report = reproduce_run(config, args.run_id)
    except FileNotFoundError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    for item in report.comparisons:
        mark = "same" if item.matches else "DIFFERENT"
        print(f"  {item.task}/{item.artifact}: {mark}")
    verdict = "identical outputs" if report.identical else "outputs differ"
    print(f"reproduced {report.original_run_id} as {report.new_run_id}: {verdict}")
    return EXIT_OK if report.identical else EXIT_FAILED


def cmd_housekeeping(args: argparse.Namespace) -> int:
    from recomart_pipeline.runtime.retention import apply_retention, plan_retention

    config = _load(args.config)
    actions = plan_retention(config)
    for item in actions:
        print(f"{item.action:<40} {item.age_days:>8.2f}d  {item.path}")
    if args.dry_run:
        count = sum(a.action == "delete" for a in actions)
        print(f"dry run: {count} folder(s) would be deleted")
        return EXIT_OK
    deleted = apply_retention(config, actions)
    print(f"deleted {len(deleted)} folder(s)")
    return EXIT_OK


def cmd_config_reference(args: argparse.Namespace) -> int:
    from recomart_pipeline.config.reference import render_reference

    print(render_reference())
    return EXIT_OK


# Commands whose arguments and behaviour live with their concern: (name, help, module).
# Each module provides add_<x>_arguments(parser) and run_<x>(args) -> exit code.
EXTENSION_COMMANDS: list[tuple[str, str, str, str, str]] = [
    (
        "generate-data",
        "write a synthetic RecoMart data set (deterministic for a seed)",
        "recomart_pipeline.datagen",
        "add_cli_arguments",
        "run_cli",
    ),
    *(
        (
            name,
            help_text,
            "recomart_pipeline.deployment.cli_commands",
            f"add_{name}_arguments",
            f"run_{name}",
        )
        for name, help_text in [
            ("serve", "serve the champion model over HTTP (FastAPI + uvicorn)"),
            ("approve", "approve a model version awaiting approval (promotes it)"),
            ("rollback", "restore the previous champion model"),
            ("models", "list registered model versions and the champion"),
        ]
    ),
]


def _add_extensions(sub: argparse._SubParsersAction) -> None:
    for name, help_text, module_name, add_name, run_name in EXTENSION_COMMANDS:
        module = importlib.import_module(module_name)
        parser = sub.add_parser(name, help=help_text)
        getattr(module, add_name)(parser)
        parser.set_defaults(handler=getattr(module, run_name))


def _add_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", help="config file (default: $PIPELINE_CONFIG or ./pipeline_config.yaml)"
    )
    parser.add_argument(
        "--env",
        metavar="NAME",
        help="use the environment overlay next to the config, e.g. --env prod reads "
        "pipeline_config.prod.yaml",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recomart-pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = [
        ("validate", "check a config file and list every error", cmd_validate),
        ("plan", "dry run: order, parallel groups, timeouts, retries, skips", cmd_plan),
        ("run", "materialize the pipeline through Dagster (persistent local home)", cmd_run),
        ("task", "run one task outside Dagster, for debugging", cmd_task),
        ("schema", "print the JSON Schema of pipeline_config.yaml", cmd_schema),
        (
            "config-reference",
            "print the README's config reference (Markdown)",
            cmd_config_reference,
        ),
        ("runs", "list recent runs, show one, or export the run history", cmd_runs),
        ("housekeeping", "apply the retention policy to stored outputs", cmd_housekeeping),
        ("watchdog", "fail runs whose worker died and kill their orphans", cmd_watchdog),
        ("backfill", "run a range of daily partitions", cmd_backfill),
        ("schedule-resume", "end a schedule's pause after repeated failures", cmd_schedule_resume),
        ("approve-schema", "accept a changed source schema so runs continue", cmd_approve_schema),
        ("reproduce", "re-run a recorded run with its config and compare hashes", cmd_reproduce),
    ]
    parsers = {}
    for name, help_text, handler in commands:
        parsers[name] = sub.add_parser(name, help=help_text)
        parsers[name].set_defaults(handler=handler)
    for name in ("validate", "plan", "run"):
        _add_file(parsers[name])
    parsers["plan"].add_argument("--json", action="store_true", help="machine-readable plan")
    parsers["run"].add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value for this run, e.g. tasks.training.config.svd.n_factors=64",
    )
    parsers["run"].add_argument(
        "--partition", metavar="YYYY-MM-DD", help="run one daily partition (partitioned pipelines)"
    )
    parsers["run"].add_argument(
        "--resume",
        metavar="RUN_ID",
        help="re-execute a failed run from its failure, reusing what succeeded",
    )
    parsers["run"].add_argument(
        "--select", nargs="+", metavar="TASK", help="materialize only these tasks"
    )
    parsers["task"].add_argument("name", help="task name from the config")
    parsers["task"].add_argument("--config", dest="file", help="config file")
    parsers["task"].add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use this file as input artifact NAME instead of the checkpoints",
    )
    parsers["task"].add_argument(
        "--output", metavar="DIR", help="write outputs under DIR instead of storage"
    )
    parsers["schema"].add_argument("--output", metavar="FILE", help="write the schema to FILE")
    runs = parsers["runs"]
    runs.add_argument("action", nargs="?", choices=["list", "show", "export"], default="list")
    runs.add_argument("run_id", nargs="?", help="run id (for show)")
    runs.add_argument("--config", dest="config", help="config file")
    runs.add_argument("--limit", type=int, default=20, help="how many runs (newest first)")
    runs.add_argument("--format", choices=["csv", "md"], default="md", help="export format")
    runs.add_argument("--output", metavar="FILE", help="export to FILE instead of stdout")
    parsers["housekeeping"].add_argument("--config", dest="config", help="config file")
    parsers["watchdog"].add_argument("--config", dest="config", help="config file")
    parsers["backfill"].add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD")
    parsers["backfill"].add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD")
    parsers["backfill"].add_argument("--config", dest="config", help="config file")
    parsers["schedule-resume"].add_argument("--config", dest="config", help="config file")
    parsers["approve-schema"].add_argument("--config", dest="config", help="config file")
    parsers["approve-schema"].add_argument(
        "--task", default="ingestion", help="the ingesting task (default: ingestion)"
    )
    parsers["housekeeping"].add_argument(
        "--dry-run", action="store_true", help="show what would be deleted, delete nothing"
    )
    parsers["reproduce"].add_argument("run_id", help="run id from `runs`")
    parsers["reproduce"].add_argument("--config", dest="config", help="config file")
    _add_extensions(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "env", None):
            args.file = str(environment_config_path(args.file, args.env))
        return args.handler(args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
