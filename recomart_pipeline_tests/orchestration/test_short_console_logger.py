"""The ``console`` logger a job can use so Dagster's own console prints short task lines."""

import pytest
from dagster import AssetExecutionContext, DagsterInstance, Definitions, asset, define_asset_job

from recomart_pipeline.orchestration.console import short_console_logger


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
