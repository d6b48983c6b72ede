"""``dagster dev`` as users run it: assets grouped under the pipeline, the job, Materialize.

The web UI's GraphQL API is what the UI's buttons call, so launching through it is the
"Materialize" click (runs are queued and started by the daemon ``dagster dev`` runs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recomart_pipeline_tests.helpers import (
    ASSETS_QUERY,
    JOBS_QUERY,
    MATERIALIZATIONS,
    dagster_dev,
    graphql,
    job_params,
    launch_and_wait,
    launch_run,
    project_env,
    run_status,
)

pytestmark = pytest.mark.slow


def test_webserver_lists_assets_and_materializes(sample_project):
    """GraphQL, as the UI's buttons use it: assets, groups, deps, the job, Materialize."""
    project = sample_project.parent
    with dagster_dev(project, project_env(project)) as port:
        nodes = graphql(port, ASSETS_QUERY)["assetNodes"]
        groups = {n["assetKey"]["path"][0]: n["groupName"] for n in nodes}
        assert groups == dict.fromkeys(["numbers", "square", "square_again", "total"], "sample")
        deps = {
            n["assetKey"]["path"][0]: sorted(d["path"][0] for d in n["dependencyKeys"])
            for n in nodes
        }
        assert deps["total"] == ["square", "square_again"]
        repo = graphql(port, JOBS_QUERY)["repositoriesOrError"]["nodes"][0]
        assert "automated_pipeline_job" in {j["name"] for j in repo["jobs"]}
        params = job_params(port)
        run_id = launch_and_wait(port, params)
        assert run_status(port, run_id) == "SUCCESS"
        nodes = graphql(port, MATERIALIZATIONS)["assetNodes"]
        latest = {
            n["assetKey"]["path"][0]: [m["runId"] for m in n["assetMaterializations"]]
            for n in nodes
        }
        assert latest == {key: [run_id] for key in ["numbers", "square", "square_again", "total"]}
        assert (project / "storage" / "latest" / "total.json").exists()
        _launchpad_run_config(port, params, project)


def _launchpad_run_config(port: int, params: dict, project: Path) -> None:
    """What the launchpad sends: a wrong type and a broken rule are both refused at launch."""
    wrong_type = launch_run(
        port, {**params, "runConfigData": {"ops": {"numbers": {"config": {"count": "six"}}}}}
    )
    assert wrong_type["__typename"] == "RunConfigValidationInvalid", wrong_type
    broken = launch_run(
        port, {**params, "runConfigData": {"ops": {"numbers": {"config": {"count": -1}}}}}
    )
    assert broken["__typename"] == "PythonError", broken
    assert "tasks.numbers.config.count: must be ≥ 0 (got -1)" in broken["message"]
    run_id = launch_and_wait(
        port, {**params, "runConfigData": {"ops": {"numbers": {"config": {"count": 6}}}}}
    )
    assert run_status(port, run_id) == "SUCCESS"
    manifest = json.loads((project / "storage" / "runs" / run_id / "manifest.json").read_text())
    assert manifest["overrides"] == ["tasks.numbers.config.count=6"]
    assert manifest["tasks"]["total"]["metrics"] == {"total": 2 * sum(n * n for n in range(6))}
