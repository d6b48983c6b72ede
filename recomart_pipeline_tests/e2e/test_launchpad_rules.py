"""The launchpad refuses a value that breaks a task's rule before any run exists.

Through the GraphQL mutation the launchpad's *Launch* button sends, on the shipped pipeline
served by ``dagster dev``: a range rule and a cross-field rule are refused with the config
error naming the key, and the instance holds no run; a good value still launches.
"""

from __future__ import annotations

import json

import pytest

from recomart_pipeline_tests.helpers import (
    copy_default_project,
    dagster_dev,
    graphql,
    job_params,
    launch_and_wait,
    launch_run,
    project_env,
    run_status,
)

pytestmark = pytest.mark.slow

RUN_IDS = "{ runsOrError { ... on Runs { results { runId } } } }"


def _run_ids(port: int) -> list[str]:
    return [run["runId"] for run in graphql(port, RUN_IDS)["runsOrError"]["results"]]


def _training(config: dict) -> dict:
    return {"ops": {"training": {"config": config}}}


def test_launchpad_refuses_a_rule_breaking_value_before_a_run_exists(tmp_path):
    project = copy_default_project(tmp_path)
    with dagster_dev(project, project_env(project)) as port:
        params = job_params(port)
        refusals = {
            "tasks.training.config.svd.n_factors: must be ≥ 1 (got -5)": _training(
                {"svd": {"n_factors": -5}}
            ),
            # k from the launchpad against the YAML's gates (ndcg_at_10)
            "unknown metric(s) ['ndcg_at_10']; with k=5": {
                "ops": {"evaluation": {"config": {"k": 5}}}
            },
        }
        for message, run_config in refusals.items():
            refused = launch_run(port, {**params, "runConfigData": run_config})
            assert refused["__typename"] != "LaunchRunSuccess", refused
            assert message in json.dumps(refused, ensure_ascii=False), refused
        assert _run_ids(port) == []

        # the same launch with a good value creates its run (only ingestion, to be quick)
        selection = {"assetSelection": [{"path": ["ingestion"]}]}
        good = {
            **params,
            "selector": {**params["selector"], **selection},
            "runConfigData": _training({"svd": {"n_factors": 8}}),
        }
        run_id = launch_and_wait(port, good)
        assert run_status(port, run_id) == "SUCCESS"
        assert _run_ids(port) == [run_id]
        manifest = json.loads((project / "storage" / "runs" / run_id / "manifest.json").read_text())
        assert manifest["overrides"] == ["tasks.training.config.svd.n_factors=8"]
