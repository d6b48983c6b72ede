"""``dagster dev`` as users run it: assets grouped under the pipeline, the job, Materialize.

The web UI's GraphQL API is what the UI's buttons call, so launching through it is the
"Materialize" click (runs are queued and started by the daemon ``dagster dev`` runs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recomart_pipeline_tests.e2e.test_dagster_cli import _env
from recomart_pipeline_tests.helpers import (
    DAGSTER,
    dagster_dev,
    free_port,
    graphql,
    stop_process_group,
    wait_until,
    write_workspace,
)

pytestmark = pytest.mark.slow
# Names other test modules import from here.
__all__ = ["DAGSTER", "_free_port", "_wait_until", "_workspace", "stop_process_group"]
_free_port, _wait_until, _graphql, _workspace = free_port, wait_until, graphql, write_workspace

ASSETS_QUERY = """
{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }
"""
JOBS_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name }
  jobs { name } } } } }
"""
LAUNCH = """
mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message } ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }
"""
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
MATERIALIZATIONS = """
{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId } } }
"""


def test_webserver_lists_assets_and_materializes(sample_project):
    """GraphQL, as the UI's buttons use it: assets, groups, deps, the job, Materialize."""
    project = sample_project.parent
    with dagster_dev(project, _env(project)) as port:
        nodes = _graphql(port, ASSETS_QUERY)["assetNodes"]
        groups = {n["assetKey"]["path"][0]: n["groupName"] for n in nodes}
        assert groups == dict.fromkeys(["numbers", "square", "square_again", "total"], "sample")
        deps = {
            n["assetKey"]["path"][0]: sorted(d["path"][0] for d in n["dependencyKeys"])
            for n in nodes
        }
        assert deps["total"] == ["square", "square_again"]
        repo = _graphql(port, JOBS_QUERY)["repositoriesOrError"]["nodes"][0]
        assert "automated_pipeline_job" in {j["name"] for j in repo["jobs"]}
        params = {
            "selector": {
                "repositoryLocationName": repo["location"]["name"],
                "repositoryName": repo["name"],
                "pipelineName": "automated_pipeline_job",
            },
            "mode": "default",
        }
        run_id = _launch_and_wait(port, params)
        assert _status(port, run_id) == "SUCCESS"
        nodes = _graphql(port, MATERIALIZATIONS)["assetNodes"]
        latest = {
            n["assetKey"]["path"][0]: [m["runId"] for m in n["assetMaterializations"]]
            for n in nodes
        }
        assert latest == {key: [run_id] for key in ["numbers", "square", "square_again", "total"]}
        assert (project / "storage" / "latest" / "total.json").exists()
        _launchpad_run_config(port, params, project)


def _status(port: int, run_id: str) -> str:
    return _graphql(port, RUN_STATUS, {"id": run_id})["runOrError"]["status"]


def _launch(port: int, params: dict) -> dict:
    return _graphql(port, LAUNCH, {"params": params})["launchPipelineExecution"]


def _launch_and_wait(port: int, params: dict) -> str:
    launched = _launch(port, params)
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    _wait_until(
        lambda: _status(port, run_id) in ("SUCCESS", "FAILURE", "CANCELED"),
        180,
        f"run {run_id}",
    )
    return run_id


def _launchpad_run_config(port: int, params: dict, project: Path) -> None:
    """What the launchpad sends: a typed value is checked by Dagster, a rule by our config."""
    wrong_type = _launch(
        port, {**params, "runConfigData": {"ops": {"numbers": {"config": {"count": "six"}}}}}
    )
    assert wrong_type["__typename"] == "RunConfigValidationInvalid", wrong_type
    broken = _launch_and_wait(
        port, {**params, "runConfigData": {"ops": {"numbers": {"config": {"count": -1}}}}}
    )
    assert _status(port, broken) == "FAILURE"
    run_id = _launch_and_wait(
        port, {**params, "runConfigData": {"ops": {"numbers": {"config": {"count": 6}}}}}
    )
    assert _status(port, run_id) == "SUCCESS"
    manifest = json.loads((project / "storage" / "runs" / run_id / "manifest.json").read_text())
    assert manifest["overrides"] == ["tasks.numbers.config.count=6"]
    assert manifest["tasks"]["total"]["metrics"] == {"total": 2 * sum(n * n for n in range(6))}
