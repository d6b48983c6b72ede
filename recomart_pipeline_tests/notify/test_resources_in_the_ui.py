"""Through a real ``dagster dev``: the Resources panel lists the pipeline's connections with
the name of the environment variable a secret comes from and never its value, the freshness
policy is on the last asset, and a run's alert goes out through the ``smtp`` resource as the
launchpad set it. The secret is in no GraphQL answer and nowhere in the Dagster home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import (
    JOBS_QUERY,
    dagster_dev,
    free_port,
    graphql,
    launch_and_wait,
    project_env,
    wait_until,
)

pytestmark = pytest.mark.slow
SECRET_VAR = "RECOMART_TEST_SMTP_PASSWORD"
SECRET = "smtp-secret-pw"  # the password the notify conftest's SMTP server accepts
RESOURCES = """
query($repo: RepositorySelector!) { allTopLevelResourceDetailsOrError(repositorySelector: $repo) {
  __typename ... on ResourceDetailsList { results { name description
    configFields { name description } configuredValues { key value type }
    assetKeysUsing { path } } } } }
"""
FRESHNESS = """
{ assetNodes { assetKey { path } internalFreshnessPolicy {
  ... on TimeWindowFreshnessPolicy { failWindowSeconds warnWindowSeconds } } } }
"""
RUN = """
query($id: ID!) { runOrError(runId: $id) { ... on Run { status runConfigYaml tags { key value } } }
  logsForRun(runId: $id) { ... on EventConnection { events { __typename
    ... on MessageEvent { message } } } } }
"""


def _project(write_config, dead_port: int) -> Path:
    return write_config(
        f"""
        pipeline: {{name: shop, environment: staging}}
        scheduling: {{enabled: true, cron: "0 2 * * *", timezone: UTC}}
        tasks:
          fetch: {{callable: "{SAMPLE}:make_numbers"}}
        notifications:
          enabled: true
          email:
            enabled: true
            smtp_server: 127.0.0.1
            smtp_port: {dead_port}
            security: plain
            username: alerts
            password: ${{{SECRET_VAR}}}
            recipients: [ops@example.com]
            notify_success: true
        """
    ).parent


def test_resources_panel_names_the_variable_and_the_alert_goes_through_the_smtp_resource(
    write_config, smtp_server
):
    port, inbox = smtp_server
    project = _project(write_config, free_port())  # nothing listens there
    env = {**project_env(project), SECRET_VAR: SECRET}
    answers: list[dict] = []
    with dagster_dev(project, env) as web_port:
        repo = graphql(web_port, JOBS_QUERY)["repositoriesOrError"]["nodes"][0]
        selector = {
            "repositoryLocationName": repo["location"]["name"],
            "repositoryName": repo["name"],
        }
        answers.append(graphql(web_port, RESOURCES, {"repo": selector}))
        answers.append(graphql(web_port, FRESHNESS))
        run_id = launch_and_wait(
            web_port,
            {
                "selector": {**selector, "pipelineName": "automated_pipeline_job"},
                "mode": "default",
                "runConfigData": {"resources": {"smtp": {"config": {"smtp_port": port}}}},
            },
        )
        answers.append(graphql(web_port, RUN, {"id": run_id}))
        # the run worker sends from a background thread that may outlive the run's SUCCESS
        # record; stopping `dagster dev` before it is done would cut the message off
        wait_until(lambda: inbox.messages, 120, "the run's alert to reach the SMTP server")
    resources = {r["name"]: r for r in answers[0]["allTopLevelResourceDetailsOrError"]["results"]}
    assert {"storage", "smtp", "slack", "mlflow"} <= set(resources)
    smtp = resources["smtp"]
    values = {v["key"]: (v["type"], v["value"]) for v in smtp["configuredValues"]}
    assert values["password"] == ("ENV_VAR", SECRET_VAR)
    assert values["username"] == ("VALUE", '"alerts"')  # JSON, as the UI shows it
    assert {"smtp_server", "smtp_port", "password", "recipients"} <= {
        f["name"] for f in smtp["configFields"]
    }
    assert ["fetch"] in [key["path"] for key in smtp["assetKeysUsing"]]

    policies = {
        "/".join(node["assetKey"]["path"]): node["internalFreshnessPolicy"]
        for node in answers[1]["assetNodes"]
    }
    assert policies["fetch"] == {"failWindowSeconds": 25 * 3600, "warnWindowSeconds": 24 * 3600}

    assert answers[2]["runOrError"]["status"] == "SUCCESS"
    # the YAML's port is dead: the message arrived through the port the run's resource set,
    # logged in with the password from the environment variable the resource names
    assert [m["Subject"] for m in inbox.messages] == [f"[shop/staging] run {run_id[:8]} succeeded"]
    assert inbox.logins == [("alerts", SECRET)]

    leaks = [json.dumps(answer)[:200] for answer in answers if SECRET in json.dumps(answer)]
    assert not leaks, leaks
    stored = [
        str(path)
        for path in (project / "dagster_home").rglob("*")
        if path.is_file() and SECRET.encode() in path.read_bytes()
    ]
    assert not stored, stored
