"""The ``console`` logger that makes Dagster's own console print short task lines: what it
prints, and that the pipeline's job uses it with no run config at all."""

from pathlib import Path

import pytest
from dagster import AssetExecutionContext, DagsterInstance, Definitions, asset, define_asset_job

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.orchestration.console import VERBOSE_CONSOLE_ENV, short_console_logger


@asset
def numbers(context: AssetExecutionContext) -> None:
    context.log.info('wrote numbers {"rows": 4, "paths": {"numbers": "/x/numbers.json"}}')


def _run(run_config: dict) -> str:
    job = define_asset_job("job")
    defs = Definitions(assets=[numbers], jobs=[job], loggers={"console": short_console_logger})
    result = defs.resolve_job_def("job").execute_in_process(
        instance=DagsterInstance.ephemeral(), run_config=run_config
    )
    assert result.success
    return result.run_id


def test_task_events_are_short_and_the_event_log_keeps_the_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _run({"loggers": {"console": {}}})  # Dagster instantiates only configured loggers
    err = capsys.readouterr().err
    assert " numbers: wrote numbers (rows=4)" in err
    assert '{"' not in err and "STEP_START" not in err  # DEBUG step events left out


def test_verbose_and_debug_bring_back_fields_and_step_events(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _run({"loggers": {"console": {"config": {"log_level": "DEBUG", "verbose": True}}}})
    err = capsys.readouterr().err
    assert 'wrote numbers {"rows": 4' in err
    assert "numbers: STEP_START" in err


def _pipeline_run(project: Path, run_config: dict | None = None) -> None:
    job = build_definitions(PipelineConfig(project)).resolve_job_def("automated_pipeline_job")
    assert job.execute_in_process(
        instance=DagsterInstance.ephemeral(), run_config=run_config
    ).success


def test_the_pipeline_job_prints_short_lines_without_any_run_config(
    sample_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VERBOSE_CONSOLE_ENV, raising=False)
    _pipeline_run(sample_project)
    err = capsys.readouterr().err
    assert " numbers: wrote numbers (rows=4)" in err
    assert "RUN_SUCCESS: Finished execution of run" in err  # the run's outcome, last
    assert '{"' not in err and "STEP_START" not in err


def test_the_environment_switch_prints_task_events_whole(
    sample_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VERBOSE_CONSOLE_ENV, "1")
    _pipeline_run(sample_project)
    assert ' numbers: wrote numbers {"rows": 4}' in capsys.readouterr().err
    # a run config's explicit verbose: false wins over the environment
    _pipeline_run(sample_project, {"loggers": {"console": {"config": {"verbose": False}}}})
    assert '{"' not in capsys.readouterr().err


def test_a_run_config_naming_loggers_replaces_the_default(
    sample_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The project CLI turns the console down this way while it prints its own lines."""
    _pipeline_run(sample_project, {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    assert capsys.readouterr().err == ""
