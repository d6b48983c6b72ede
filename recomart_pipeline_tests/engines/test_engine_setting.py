"""execution.engine: chosen in the config, shown by ``plan``, passed to the task through the
runtime (in process and in the isolated child of a task with a timeout), recorded in the
run manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.cli import main
from recomart_pipeline.config.errors import ConfigError
from recomart_pipeline.config.schema import ExecutionSection
from recomart_pipeline.runtime.records import read_manifest
from recomart_pipeline.runtime.runner import run_task
from recomart_pipeline_tests.data.helpers import REPO_ROOT


def _data_project(write_config: Callable[..., Path], execution: str, timeout: str = "") -> Path:
    data = REPO_ROOT / "data"
    return write_config(
        f"""
        execution: {execution}
        tasks:
          ingestion:
            config:
              source:
                interactions: "{data / "interactions.csv"}"
                items: "{data / "items.csv"}"
                users: "{data / "users.csv"}"
          validation:
            depends_on: [ingestion]
            {timeout}
            config: {{freshness: {{reference_time: "2026-06-01T00:00:00Z"}}}}
        """
    )


def test_the_reference_engine_is_the_default() -> None:
    assert ExecutionSection().engine == "pandas"


def test_an_unknown_engine_is_refused_naming_the_key(write_config: Callable[..., Path]) -> None:
    path = _data_project(write_config, "{engine: spark}")
    with pytest.raises(ConfigError) as raised:
        PipelineConfig(path)
    assert "execution.engine" in str(raised.value)
    assert "local" in str(raised.value)


def test_plan_shows_the_engine(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _data_project(write_config, "{engine: local}")
    assert main(["plan", str(path)]) == 0
    assert "engine: local (runs validation's row rules" in capsys.readouterr().out
    assert main(["plan", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["engine"] == "local"


def _run(path: Path) -> tuple[PipelineConfig, dict, str]:
    config = PipelineConfig(path)
    run_task(config, "ingestion", "r1")
    outcome = run_task(config, "validation", "r1")
    assert outcome.result.metrics["rows_in"] > 0
    manifest = read_manifest(config.storage_root, "r1") or {}
    log = (config.project_root / "logs" / "validation.log").read_text()
    return config, manifest, log


@pytest.mark.parametrize("engine", ["local", "pandas"])
def test_the_run_uses_and_records_the_engine(
    write_config: Callable[..., Path], engine: str
) -> None:
    _, manifest, log = _run(_data_project(write_config, f"{{engine: {engine}}}"))
    assert manifest["engine"] == engine
    assert f"row rules ran on the {engine} engine" in log


@pytest.mark.slow
def test_an_isolated_task_gets_the_engine(write_config: Callable[..., Path]) -> None:
    """A timeout runs the task in a child process, which builds its own context."""
    _, manifest, log = _run(
        _data_project(write_config, "{engine: local}", timeout="timeout_seconds: 120")
    )
    assert manifest["engine"] == "local"
    assert "row rules ran on the local engine" in log
