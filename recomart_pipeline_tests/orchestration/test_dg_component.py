"""``dg`` on the project, and the pipeline as a Component in someone else's ``dg`` project.

Real ``dg`` and ``create-dagster`` processes from this environment (no network: no
``uv sync``, the update check off): the project root loads as a dg project, and a scratch
project made by ``create-dagster`` gets the Component by ``dg scaffold defs``, loads it,
and has ``dg check yaml`` point at the line of a bad value in its YAML.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recomart_pipeline_tests.helpers import DEFAULT_TASKS, REPO_ROOT, copy_default_project

pytestmark = pytest.mark.slow

COMPONENT = "recomart_pipeline.orchestration.component.RecomartPipelineComponent"


def _tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    path = str(found) if found.exists() else shutil.which(name)
    assert path, f"{name} is not installed: pip install -r requirements-dev.txt"
    return path


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _env(tmp_path: Path, *paths: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [*map(str, paths), str(REPO_ROOT), env.get("PYTHONPATH", "")]
    )
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    env["DAGSTER_DG_UPDATE_CHECK_ENABLED"] = "0"  # no PyPI look-up
    env["COLUMNS"] = "200"
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    return env


def _asset_keys(listing: str) -> set[str]:
    return {asset["asset_key"] for asset in json.loads(listing)["assets"]}


def test_dg_loads_the_project_from_its_root(tmp_path):
    env = _env(tmp_path)
    env["PIPELINE_CONFIG"] = str(
        copy_default_project(tmp_path, data_from=tmp_path) / "pipeline_config.yaml"
    )
    checked = _run([_tool("dg"), "check", "defs"], REPO_ROOT, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = _run([_tool("dg"), "list", "defs", "--json"], REPO_ROOT, env)
    assert listed.returncode == 0, listed.stderr
    assert _asset_keys(listed.stdout) == {*DEFAULT_TASKS, "sources/ingestion"}


def test_component_scaffolded_into_a_scratch_dg_project_loads(tmp_path):
    project = tmp_path / "scratch"
    env = _env(tmp_path, project / "src")  # stands for installing the project (uv sync)
    created = _run(
        [_tool("create-dagster"), "project", "--no-uv-sync", str(project)], tmp_path, env
    )
    assert created.returncode == 0, created.stdout + created.stderr
    pyproject = project / "pyproject.toml"
    # what the package's registry_modules entry point gives once recomart-pipeline is installed
    pyproject.write_text(
        pyproject.read_text().replace(
            '"scratch.components.*",',
            '"scratch.components.*",\n    "recomart_pipeline.orchestration.component",',
        )
    )
    scaffolded = _run([_tool("dg"), "scaffold", "defs", COMPONENT, "shop_recs"], project, env)
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    defs_yaml = project / "src" / "scratch" / "defs" / "shop_recs" / "defs.yaml"
    assert defs_yaml.read_text().startswith(f"type: {COMPONENT}\n")

    checked = _run([_tool("dg"), "check", "defs"], project, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = _run([_tool("dg"), "list", "defs", "--json"], project, env)
    assert listed.returncode == 0, listed.stderr
    assert _asset_keys(listed.stdout) == {*DEFAULT_TASKS, "sources/ingestion"}

    # a value out of range: dg check yaml names the file, the line and the rule
    text = defs_yaml.read_text()
    assert text.count("n_factors: 50") == 1
    defs_yaml.write_text(text.replace("n_factors: 50", "n_factors: -5"))
    line = next(
        n for n, row in enumerate(defs_yaml.read_text().splitlines(), 1) if "n_factors: -5" in row
    )
    refused = _run([_tool("dg"), "check", "yaml"], project, env)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert f"defs.yaml:{line}" in output, output
    assert "-5 is less than the minimum of 1" in output, output
