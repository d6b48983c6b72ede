"""The click CLI keeps the argparse CLI's surface: commands, shared options, exit codes.

In-process through ``main([...])`` (what the console script runs) wherever possible; a
subprocess only to see what a fresh interpreter imports.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from recomart_pipeline.cli import main, pipeline

COMMANDS = [
    "validate",
    "plan",
    "run",
    "task",
    "backfill",
    "schema",
    "config-reference",
    "generate-data",
    "runs",
    "reproduce",
    "watchdog",
    "housekeeping",
    "approve-schema",
    "schedule-resume",
    "serve",
    "approve",
    "rollback",
    "models",
]
CONFIG_FILE_COMMANDS = ["validate", "plan", "run"]


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out.split("Commands:")[1].split()
    assert set(COMMANDS) <= set(listed)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "-h"]) == 0
    assert capsys.readouterr().out.startswith(f"Usage: recomart-pipeline {command} ")


@pytest.mark.parametrize("argv", [[], ["nope"], ["validate", "--no-such-option"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "Usage: recomart-pipeline" in capsys.readouterr().err


@pytest.mark.parametrize("command", CONFIG_FILE_COMMANDS)
def test_env_names_the_overlay_next_to_the_file(
    command: str, sample_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(sample_project), "--env", "staging"]) == 2
    err = capsys.readouterr().err
    assert "environment 'staging' has no overlay file pipeline_config.staging.yaml" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", CONFIG_FILE_COMMANDS)
def test_set_is_validated_like_the_file(
    command: str, sample_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, str(sample_project), "--set", "tasks.numbers.config.count=-2"]
    assert main(argv) == 2
    assert "--set:1 tasks.numbers.config.count: must be ≥ 0 (got -2)" in capsys.readouterr().err


def test_file_env_and_set_apply_together(
    sample_project: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(
        "extends: pipeline_config.yaml\npipeline: {environment: dev}\n", "pipeline_config.dev.yaml"
    )
    argv = ["plan", str(sample_project), "--env", "dev", "--set", "tasks.numbers.retry_count=3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "pipeline sample (dev) from" in out
    assert "numbers          timeout=" in out and "retries=3" in out


def test_validate_reports_config_errors_without_a_traceback(
    sample_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample_project.write_text(sample_project.read_text() + "  broken:\n    retry_count: -1\n")
    assert main(["validate", str(sample_project)]) == 2
    err = capsys.readouterr().err
    assert "tasks.broken.retry_count: must be ≥ 0 (got -1)" in err
    assert "Traceback" not in err


def test_config_option_reads_the_named_file(
    sample_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample_project.write_text(sample_project.read_text().replace("[numbers]", "[numbrs]", 1))
    assert main(["housekeeping", "--config", str(sample_project), "--dry-run"]) == 2
    assert "depends on unknown task 'numbrs'" in capsys.readouterr().err


def test_select_takes_several_tasks_like_argparse(
    sample_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--select", "numbers", "nope", "gone", "--", str(sample_project)]) == 2
    assert "unknown task(s) in --select: nope, gone" in capsys.readouterr().err
    assert main(["run", str(sample_project), "--select"]) == 2
    assert "Option '--select' expects at least one value." in capsys.readouterr().err


def test_ctrl_c_exits_130(sample_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "TaskDependencyGraph", interrupted)
    assert main(["validate", str(sample_project)]) == 130


def test_bash_completion_script(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("_RECOMART_PIPELINE_COMPLETE", "bash_source")
    with pytest.raises(SystemExit) as done:
        main([])
    assert done.value.code == 0
    script = capsys.readouterr().out
    assert "_recomart_pipeline_completion()" in script
    assert "complete -o nosort -F _recomart_pipeline_completion recomart-pipeline" in script


def test_completion_offers_the_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("_RECOMART_PIPELINE_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "recomart-pipeline app")
    monkeypatch.setenv("COMP_CWORD", "1")
    with pytest.raises(SystemExit):
        main([])
    assert capsys.readouterr().out.split() == ["plain,approve", "plain,approve-schema"]


def test_the_cli_module_imports_no_heavy_library() -> None:
    heavy = ["pandas", "numpy", "scipy", "numba", "pyarrow", "matplotlib", "sklearn", "dagster"]
    code = (
        "import sys, recomart_pipeline.cli; "
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


# Every command that reads the config, with the arguments it needs before FILE.
CONFIG_COMMANDS: dict[str, list[str]] = {
    "validate": [],
    "plan": [],
    "run": [],
    "task": ["numbers"],
    "backfill": ["--from", "2026-01-01", "--to", "2026-01-02"],
    "runs": [],
    "reproduce": ["some-run-id"],
    "watchdog": [],
    "housekeeping": ["--dry-run"],
    "approve-schema": ["--task", "numbers"],
    "schedule-resume": [],
    "serve": ["--port", "1"],
    "approve": ["some-version"],
    "rollback": [],
    "models": [],
}


def test_every_command_that_reads_a_config_is_listed() -> None:
    from recomart_pipeline.cli import cli

    reads_config = {
        name
        for name, command in cli.commands.items()
        if any(param.name == "config_path" for param in command.params)
    }
    assert reads_config == set(CONFIG_COMMANDS)


@pytest.mark.parametrize("command", sorted(CONFIG_COMMANDS))
@pytest.mark.parametrize("form", ["positional", "--config"])
def test_every_command_takes_the_config_as_file_or_config_option(
    command: str, form: str, sample_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A config with an error: the command must have read this very file (exit 2, its message)
    # before doing anything else.
    sample_project.write_text(sample_project.read_text().replace("[numbers]", "[numbrs]", 1))
    source = [str(sample_project)] if form == "positional" else ["--config", str(sample_project)]
    assert main([command, *CONFIG_COMMANDS[command], *source]) == 2
    err = capsys.readouterr().err
    assert "depends on unknown task 'numbrs'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", sorted(CONFIG_COMMANDS))
def test_help_shows_file_and_its_config_alias(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("[FILE]")
    assert "--config FILE" in out


def test_file_and_a_different_config_option_are_refused(
    sample_project: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_config("tasks: {}\n", "other.yaml")
    assert main(["plan", str(sample_project), "--config", str(other)]) == 2
    assert "two config files given" in capsys.readouterr().err
    assert main(["plan", str(sample_project), "--config", str(sample_project)]) == 0


def _parsed(command: str, argv: list[str]) -> dict[str, object]:
    """What click hands the command body for ``argv`` (parsing only, nothing runs)."""
    from recomart_pipeline.cli import cli

    with cli.commands[command].make_context(command, argv) as ctx:
        params = dict(ctx.params)
    params["file"] = params.pop("config_path") or params.pop("config_flag")
    params.pop("config_flag", None)
    return params


@pytest.mark.parametrize(
    "argv",
    [
        ["F.yaml", "--resume", "R1", "--select", "a", "b"],
        ["--resume", "R1", "F.yaml", "--select", "a", "b"],
        ["--resume", "R1", "--select", "a", "b", "F.yaml"],
        ["--select", "a", "b", "F.yaml", "--resume", "R1"],
        ["--select", "a", "b", "--resume", "R1", "--config", "F.yaml"],
        ["--resume", "R1", "--select", "a", "b", "--", "F.yaml"],
    ],
)
def test_run_takes_file_and_options_in_any_order(argv: list[str]) -> None:
    parsed = _parsed("run", argv)
    assert parsed["file"] == "F.yaml"
    assert parsed["resume"] == "R1"
    assert parsed["selection"] == ("a", "b")


def test_a_list_option_names_what_is_not_a_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--select", "F.yaml"]) == 2
    assert "'F.yaml' is not a task name" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "action", "run_id", "file"),
    [
        ([], "list", None, None),
        (["F.yaml"], "list", None, "F.yaml"),
        (["list", "F.yaml"], "list", None, "F.yaml"),
        (["show", "R1"], "show", "R1", None),
        (["show", "R1", "F.yaml", "--limit", "3"], "show", "R1", "F.yaml"),
        (["--config", "F.yaml", "show", "R1"], "show", "R1", "F.yaml"),
        (["export", "F.yaml", "--format", "csv"], "export", None, "F.yaml"),
    ],
)
def test_runs_sorts_its_positionals_out(
    argv: list[str], action: str, run_id: str | None, file: str | None
) -> None:
    parsed = _parsed("runs", argv)
    assert (parsed["action"], parsed["run_id"], parsed["file"]) == (action, run_id, file)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "lst"], "'lst' is neither an action (list, show, export) nor a config file"),
        (["runs", "show"], "runs show needs a RUN_ID"),
        (["runs", "list", "a.yaml", "b.yaml"], "unexpected argument(s): b.yaml"),
    ],
)
def test_runs_refuses_positionals_it_cannot_place(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_plan_says_how_retry_delay_becomes_the_waits(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        """
        retry_policy: {backoff_base: 2, max_backoff: 100, jitter: 0}
        tasks:
          numbers: {callable: "recomart_pipeline_tests.sample_tasks:make_numbers", retry_count: 3, retry_delay: 30}
        """
    )
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "retry waits: retry_delay × 2^(retry - 1), at most 100s (retry_policy)" in out
    assert "retries=3 (waits 30s, 60s, 100s)" in out
