"""The Dagster UI's stale badge after a data file changes, through the GraphQL the UI uses.

Ingestion depends on the observable source asset ``sources/ingestion`` (the files it reads);
once the UI's "Observe sources" records a new fingerprint, Dagster itself calls ingestion
stale. Dagster's status is not transitive: its dependents turn stale when ingestion has new
data, which the test shows by materializing ingestion alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from recomart_pipeline_tests.helpers import (
    DEFAULT_TASKS,
    copy_default_project,
    dagster_dev,
    graphql,
    job_params,
    launch_and_wait,
    project_env,
    run_in_project,
    run_status,
)

pytestmark = pytest.mark.slow

STALE_QUERY = """
{ assetNodes { assetKey { path } jobNames isObservable staleStatus
  staleCauses { category reason key { path } } } }
"""
SOURCE = "sources/ingestion"


def _nodes(port: int) -> dict[str, dict]:
    return {"/".join(n["assetKey"]["path"]): n for n in graphql(port, STALE_QUERY)["assetNodes"]}


def _stale(port: int) -> set[str]:
    return {key for key, node in _nodes(port).items() if node["staleStatus"] == "STALE"}


def _launch_assets(port: int, job: str, keys: list[str]) -> str:
    """What the UI's "Observe sources" / "Materialize" buttons send for ``keys``."""
    params = job_params(port, job)
    params["selector"]["assetSelection"] = [{"path": key.split("/")} for key in keys]
    run_id = launch_and_wait(port, params)
    assert run_status(port, run_id) == "SUCCESS", run_id
    return run_id


def test_a_changed_data_file_shows_ingestion_and_its_dependents_stale_in_the_ui(
    tmp_path: Path,
) -> None:
    project = copy_default_project(tmp_path)
    done = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with dagster_dev(project, project_env(project)) as port:
        nodes = _nodes(port)
        assert set(nodes) == {*DEFAULT_TASKS, SOURCE}
        assert nodes[SOURCE]["isObservable"]
        assert _stale(port) == set()  # the run observed what it read

        interactions = project / "data" / "interactions.csv"
        lines = interactions.read_text().splitlines(keepends=True)
        interactions.write_text("".join(lines[:-1]))  # one event fewer
        assert _stale(port) == set()  # not observed yet: Dagster cannot know

        job = nodes[SOURCE]["jobNames"][0]
        assert _launch_assets(port, job, [SOURCE])
        nodes = _nodes(port)
        assert _stale(port) == set(DEFAULT_TASKS)  # ingestion and everything downstream
        # the cause the UI names on each: the source's new data version
        for task in DEFAULT_TASKS:
            assert (SOURCE, "DATA", "has a new data version") in {
                ("/".join(c["key"]["path"]), c["category"], c["reason"])
                for c in nodes[task]["staleCauses"]
            }, task

        # ingestion materialized alone reads the new file: the rest stay stale
        assert _launch_assets(port, nodes["ingestion"]["jobNames"][0], ["ingestion"])
        assert _stale(port) == set(DEFAULT_TASKS) - {"ingestion"}
