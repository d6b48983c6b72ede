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
