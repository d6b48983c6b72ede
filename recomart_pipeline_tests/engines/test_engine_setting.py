"""execution.engine: chosen in the config, shown by ``plan``, passed to the task through the
runtime (in process and in the isolated child of a task with a timeout), recorded in the
run manifest."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.cli import main
from recomart_pipeline.config.errors import ConfigError
from recomart_pipeline.config.schema import ExecutionSection
from recomart_pipeline.runtime.records import read_manifest
from recomart_pipeline.runtime.runner import TaskFailure, run_task
from recomart_pipeline_tests.data.helpers import REPO_ROOT
from recomart_pipeline_tests.engines.conftest import require_spark


def _data_project(
    write_config: Callable[..., Path], execution: str, timeout: str = "", ingestion: str = ""
) -> Path:
    """The bundled sample through ingestion and validation; ``timeout`` and ``ingestion``
    are extra lines of the validation and ingestion entries."""
    data = REPO_ROOT / "data"
    return write_config(
        f"""
        execution: {execution}
        tasks:
          ingestion:
            {ingestion}
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


def test_the_embedded_engine_is_the_default() -> None:
    # issue 19: local (DuckDB) by default; pandas, the reference, is chosen by name
    assert ExecutionSection().engine == "local"


def test_an_unknown_engine_is_refused_naming_the_key(write_config: Callable[..., Path]) -> None:
    path = _data_project(write_config, "{engine: flink}")
    with pytest.raises(ConfigError) as raised:
        PipelineConfig(path)
    assert "execution.engine" in str(raised.value)
    assert "local" in str(raised.value) and "spark" in str(raised.value)


def test_plan_shows_the_engine(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _data_project(write_config, "{engine: local}")
    assert main(["plan", str(path)]) == 0
    # the tasks of this config that run on it
    assert "engine: local (runs ingestion, validation; docs/engines.md)" in (
        capsys.readouterr().out
    )
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


SPARK = "{engine: spark, spark: {master: 'local[2]', conf: {spark.ui.enabled: false}}}"


def test_spark_settings_are_checked_and_secrets_masked(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """No pyspark import to validate or plan: the settings are plain config."""
    with pytest.raises(ConfigError) as raised:
        PipelineConfig(_data_project(write_config, "{engine: spark, spark: {mastr: yarn}}"))
    assert "execution.spark" in str(raised.value) and "master" in str(raised.value)
    secret = (
        "{engine: spark, spark: {master: yarn, scratch: 'hdfs:///tmp/recomart', "
        "conf: {spark.hadoop.fs.s3a.secret.key: s3cr3t}}}"
    )
    path = _data_project(write_config, secret)
    config = PipelineConfig(path)
    assert config.settings.execution.spark.session_options()["conf"] == {
        "spark.hadoop.fs.s3a.secret.key": "s3cr3t"
    }
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "engine: spark (master yarn, app recomart_pipeline" in out
    assert "scratch hdfs:///tmp/recomart" in out
    assert main(["plan", str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["engine"] == "spark" and plan["spark"]["master"] == "yarn"
    assert "s3cr3t" not in out + json.dumps(plan) + json.dumps(config.to_dict())


def test_spark_without_java_fails_with_the_fix(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JAVA_HOME without java (or no pyspark): the task says what is missing and how to
    get it, before Spark is asked for anything."""
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    config = PipelineConfig(_data_project(write_config, SPARK))
    with pytest.raises(TaskFailure) as raised:
        run_task(config, "ingestion", "r1")  # the first task on the engine
    message = str(raised.value)
    if importlib.util.find_spec("pyspark") is None:
        assert "needs pyspark, which is not installed" in message
        assert "pip install 'recomart-pipeline[spark]'" in message
    else:
        assert "needs a Java runtime (17 or later)" in message and "no-java" in message
        assert "install Java 17" in message
    assert "execution.engine / tasks.<name>.engine: local" in message


@pytest.mark.slow
def test_the_spark_engine_runs_the_task_and_is_recorded(
    write_config: Callable[..., Path],
) -> None:
    """Through the runtime: the task starts its own local[2] session and stops it."""
    require_spark()
    from pyspark.sql import SparkSession

    _, manifest, log = _run(_data_project(write_config, SPARK))
    assert manifest["engine"] == "spark"
    assert "row rules ran on the spark engine" in log
    assert SparkSession.getActiveSession() is None


@pytest.mark.slow
def test_an_isolated_task_gets_the_engine(write_config: Callable[..., Path]) -> None:
    """A timeout runs the task in a child process, which builds its own context."""
    _, manifest, log = _run(
        _data_project(write_config, "{engine: local}", timeout="timeout_seconds: 120")
    )
    assert manifest["engine"] == "local"
    assert "row rules ran on the local engine" in log


def test_a_task_engine_overrides_the_execution_engine(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _data_project(write_config, "{engine: pandas}", timeout="engine: local")
    config = PipelineConfig(path)
    assert (config.engine_of("validation"), config.engine_of("ingestion")) == ("local", "pandas")
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "engine: pandas (" in out
    overridden = [line.split()[1] for line in out.splitlines() if "engine=local" in line]
    assert overridden == ["validation"]
    assert main(["plan", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["engines"] == {
        "ingestion": "pandas",
        "validation": "local",
    }
    _, manifest, log = _run(path)
    assert manifest["engine"] == "pandas"
    assert manifest["engines"] == {"ingestion": "pandas", "validation": "local"}
    assert "row rules ran on the local engine" in log


def test_a_task_engine_its_rules_do_not_run_on_is_refused(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(
        """
        execution: {engine: local}
        tasks:
          report:
            engine: spark
        """
    )
    with pytest.raises(ConfigError) as raised:
        PipelineConfig(path)
    message = str(raised.value)
    assert "task 'report' cannot run on the spark engine" in message
    assert "tasks.report.engine" in message and "its rules run on pandas" in message
    # execution.engine stays a default (the shipped config's is local): tasks it does not
    # apply to run on pandas.
    config = PipelineConfig(write_config((REPO_ROOT / "pipeline_config.yaml").read_text()))
    assert config.settings.execution.engine == "local"
    engines = [config.engine_of(task) for task in ("ingestion", "validation", "report")]
    assert engines == ["local", "local", "pandas"]
    spark = PipelineConfig(
        _data_project(write_config, "{engine: local}", ingestion="engine: spark")
    )
    assert spark.engine_of("ingestion") == "spark"
