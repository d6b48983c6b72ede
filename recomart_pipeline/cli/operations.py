"""Commands that look after runs and their outputs once they exist.

runs, reproduce, watchdog, housekeeping, approve-schema and schedule-resume: an operator's
tools. Each imports what it drives inside its body, so the CLI starts without Dagster.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from recomart_pipeline.cli.options import EXIT_FAILED, EXIT_OK, config_option, verbose_option
from recomart_pipeline.config import PipelineConfig

RUNS_ACTIONS = ("list", "show", "export")


def _runs_positionals(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Sorts ``runs [list|show RUN_ID|export] [FILE]`` out; returns FILE.

    click fills positionals left to right, so ``runs list FILE`` lands FILE in RUN_ID and
    ``runs FILE`` in ACTION. FILE is processed after both, so its callback puts each back.
    """
    given = [v for v in (ctx.params.get("action"), ctx.params.get("run_id"), value) if v]
    action = given.pop(0) if given and given[0] in RUNS_ACTIONS else "list"
    run_id = given.pop(0) if action == "show" and given else None
    if action == "show" and run_id is None:
        raise click.UsageError("runs show needs a RUN_ID (see `runs list`)", ctx)
    if len(given) > 1:
        raise click.UsageError(f"unexpected argument(s): {' '.join(given[1:])}", ctx)
    file = given[0] if given else None
    if file and not Path(file).exists() and not {".", "/"} & set(file):
        raise click.UsageError(
            f"'{file}' is neither an action ({', '.join(RUNS_ACTIONS)}) nor a config file", ctx
        )
    ctx.params["action"], ctx.params["run_id"] = action, run_id
    return file


@click.command("runs")
@click.argument(
    "action",
    metavar="[list|show|export]",
    required=False,
    shell_complete=lambda ctx, param, incomplete: [
        a for a in RUNS_ACTIONS if a.startswith(incomplete)
    ],
)
@click.argument("run_id", metavar="[RUN_ID]", required=False)
@config_option(callback=_runs_positionals)
@click.option("--limit", type=int, default=20, help="how many runs (newest first)")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["csv", "md"]),
    default="md",
    help="export format",
)
@click.option(
    "--output", metavar="FILE", type=click.Path(), help="export to FILE instead of stdout"
)
def runs(
    config: PipelineConfig,
    action: str,
    run_id: str | None,
    limit: int,
    export_format: str,
    output: str | None,
) -> int:
    """list recent runs, show one, or export the run history

    Lists by default; `runs show RUN_ID` prints one run's manifest, `runs export` the
    history as Markdown or CSV.
    """
    from recomart_pipeline.runtime import run_history
    from recomart_pipeline.runtime.object_store import object_store_for
    from recomart_pipeline.runtime.records import load_manifests

    manifests = load_manifests(config.storage_root, object_store_for(config))
    if action == "show":
        found = [m for m in manifests if m["run_id"] == run_id]
        if not found:
            print(f"no run '{run_id}' under {config.storage_root / 'runs'}", file=sys.stderr)
            return EXIT_FAILED
        shown = dict(found[0])
        shown["environment_info"] = {
            k: v for k, v in shown["environment_info"].items() if k != "packages"
        } | {"packages": f"{len(found[0]['environment_info']['packages'])} recorded"}
        print(json.dumps(shown, indent=2))
        return EXIT_OK
    rows = run_history.summaries(manifests)[:limit]
    if action == "export":
        text = (
            run_history.export_csv(rows)
            if export_format == "csv"
            else run_history.export_markdown(rows)
        )
        if output:
            Path(output).write_text(text)
            print(f"wrote {len(rows)} runs to {output}")
        else:
            sys.stdout.write(text)
        return EXIT_OK
    print(run_history.format_table(rows))
    return EXIT_OK


@click.command("reproduce")
@click.argument("run_id")
@config_option
@verbose_option
def reproduce(config: PipelineConfig, run_id: str, verbose: bool) -> int:
    """re-run a recorded run with its config and compare its outputs

    RUN_ID is a run id from `runs`. Prints one line per task: `identical` when every output
    matches (byte for byte, or by its stable content where an output depends on the registry
    or the previous run, with a note saying what was left out), else `DIFFERENT` and which
    outputs differ. Exit code 0 only when everything is identical.
    """
    from recomart_pipeline.orchestration.reproduce import reproduce_run

    try:
        # Progress on stderr: stdout is the comparison, as scripts read it.
        report = reproduce_run(
            config,
            run_id,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
            verbose=verbose,
        )
    except FileNotFoundError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    grouped = report.by_task()
    width = max((len(task) for task in grouped), default=4)
    print(f"{'task':<{width}}  result")
    for task, items in grouped.items():
        differing = [i.artifact for i in items if not i.matches]
        verdict = f"DIFFERENT: {', '.join(differing)}" if differing else "identical"
        print(f"{task:<{width}}  {verdict} ({len(items)} output{'s' * (len(items) != 1)})")
        for item in items:
            if item.note:
                print(f"{'':<{width}}    {item.artifact}: {item.note}")
    verdict = "identical outputs" if report.identical else "outputs differ"
    if not report.run_succeeded:
        verdict += " (the reproduction did not succeed)"
    print(f"reproduced {report.original_run_id} as {report.new_run_id}: {verdict}")
    return EXIT_OK if report.identical else EXIT_FAILED


@click.command("watchdog")
@config_option
def watchdog(config: PipelineConfig) -> int:
    """fail runs whose worker died and kill their orphans"""
    from recomart_pipeline.orchestration.execution import project_instance
    from recomart_pipeline.orchestration.watchdog import fail_dead_runs

    dead = fail_dead_runs(config, project_instance(config))
    for run in dead:
        print(f"run {run.run_id}: worker dead -> marked FAILURE; killed {run.killed_children}")
    print(f"{len(dead)} dead run(s) found")
    return EXIT_OK


@click.command("housekeeping")
@config_option
@click.option("--dry-run", is_flag=True, help="show what would be deleted, delete nothing")
def housekeeping(config: PipelineConfig, dry_run: bool) -> int:
    """apply the retention policy to stored outputs"""
    from recomart_pipeline.runtime.retention import apply_retention, plan_retention

    actions = plan_retention(config)
    for item in actions:
        print(f"{item.action:<40} {item.age_days:>8.2f}d  {item.path}")
    if dry_run:
        count = sum(a.action == "delete" for a in actions)
        print(f"dry run: {count} folder(s) would be deleted")
        return EXIT_OK
    deleted = apply_retention(config, actions)
    print(f"deleted {len(deleted)} folder(s)")
    return EXIT_OK


@click.command("approve-schema")
@config_option
@click.option(
    "--task",
    "task_name",
    default="ingestion",
    help="the ingesting task (default: ingestion)",
)
def approve_schema(config: PipelineConfig, task_name: str) -> int:
    """accept a changed source schema so runs continue"""
    from recomart_pipeline.contract.errors import TaskError
    from recomart_pipeline.tasks.schema_approval import approve, describe

    try:
        diff = approve(config.storage_root, task_name)
    except TaskError as exc:
        print(f"approve-schema: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"approved the new schema of '{task_name}': {describe(diff)}")
    print(f"re-run (or `run --resume RUN_ID`) to continue past '{task_name}'")
    return EXIT_OK


@click.command("schedule-resume")
@config_option
def schedule_resume(config: PipelineConfig) -> int:
    """end a schedule's pause after repeated failures"""
    from recomart_pipeline.orchestration.schedule_circuit import resume_schedule

    resume_schedule(config)
    print("schedule resumed: earlier failures no longer pause it")
    return EXIT_OK
