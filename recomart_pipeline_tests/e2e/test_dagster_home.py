"""A fresh clone's Dagster home is configured: ``make ui`` needs no first run to write one.

The settings are versioned in ``.dagster_home/dagster.yaml``; ``dagster dev`` on a home that
holds only that file runs the monitoring daemon, queues a pipeline's runs one at a time and
sends no telemetry, without Dagster's "no dagster.yaml" warning; a home the CLI creates gets
the same file.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration.execution import project_instance
from recomart_pipeline.orchestration.instance import SHIPPED_DAGSTER_YAML
from recomart_pipeline_tests.helpers import (
    REPO_ROOT,
    copy_default_project,
    dagster_dev,
    graphql,
    project_env,
)

INSTANCE = """
{ instance { info
  runQueueConfig { tagConcurrencyLimitsYaml }
  daemonHealth { allDaemonStatuses { daemonType required } } } }
"""


def test_the_settings_are_versioned_where_dagster_reads_them():
    assert SHIPPED_DAGSTER_YAML == REPO_ROOT / ".dagster_home" / "dagster.yaml"
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", ".dagster_home/dagster.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert tracked.returncode == 0, tracked.stderr


def test_a_home_the_cli_creates_gets_the_same_settings(tmp_path, monkeypatch):
    home = tmp_path / "elsewhere"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    config = PipelineConfig(
        copy_default_project(tmp_path, data_from=tmp_path) / "pipeline_config.yaml"
    )
    project_instance(config).dispose()
    assert (home / "dagster.yaml").read_bytes() == SHIPPED_DAGSTER_YAML.read_bytes()


@pytest.mark.slow
def test_dagster_dev_on_a_fresh_home_runs_with_the_projects_settings(tmp_path):
    project = copy_default_project(tmp_path, data_from=tmp_path)
    env = project_env(project)
    home = project / ".dagster_home"
    home.mkdir()
    shutil.copy(SHIPPED_DAGSTER_YAML, home)  # what a clone holds before anything ran
    env["DAGSTER_HOME"] = str(home)
    log = tmp_path / "dagster_dev.log"
    with dagster_dev(project, env, log=log) as port:
        instance = graphql(port, INSTANCE)["instance"]
    daemons = {
        d["daemonType"]: d["required"] for d in instance["daemonHealth"]["allDaemonStatuses"]
    }
    assert daemons.get("MONITORING") is True, daemons
    assert "telemetry:\n  enabled: false" in instance["info"]
    assert "key: pipeline" in instance["runQueueConfig"]["tagConcurrencyLimitsYaml"]
    assert "No dagster instance configuration file" not in log.read_text()
