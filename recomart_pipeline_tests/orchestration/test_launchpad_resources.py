"""The launchpad refuses a resource value the YAML's rules refuse before any run exists, and
the runs it launches print short console lines.

Through the GraphQL mutation the launchpad's *Launch* button sends, against ``dagster dev``
on a small pipeline: bad SMTP and Slack values are refused with the YAML's message naming the
key, no run is created and no secret is shown; a good value launches, reaches the run's
settings, and the run's lines in ``dagster dev``'s console are short.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import (
    dagster_dev,
    graphql,
    job_params,
    launch_and_wait,
    launch_run,
    project_env,
    run_status,
)

pytestmark = pytest.mark.slow

SECRET = "smtp-pw-launchpad-41d7"
PIPELINE = f"""
pipeline: {{name: launchpad}}
notifications:
  email:
    password: ${{LAUNCHPAD_SMTP_PASSWORD}}
    recipients: [ops@example.com]
tasks:
  numbers: {{callable: "{SAMPLE}:make_numbers", config: {{count: 4}}}}
"""
RUN_IDS = "{ runsOrError { ... on Runs { results { runId } } } }"


def _run_ids(port: int) -> list[str]:
    return [run["runId"] for run in graphql(port, RUN_IDS)["runsOrError"]["results"]]


def _resources(key: str, values: dict) -> dict:
    return {"resources": {key: {"config": values}}}


def test_launchpad_refuses_bad_resource_values_before_a_run_exists(tmp_path: Path) -> None:
    (tmp_path / "pipeline_config.yaml").write_text(textwrap.dedent(PIPELINE))
    env = {**project_env(tmp_path), "LAUNCHPAD_SMTP_PASSWORD": SECRET}
    console = tmp_path / "dagster_dev.log"
    with dagster_dev(tmp_path, env, log=console) as port:
        params = job_params(port)
        refusals = {
            "notifications.email.smtp_port: must be ≤ 65535 (got 70000)": _resources(
                "smtp", {"smtp_port": 70000}
            ),
            "notifications.email.security: must be one of 'plain', 'starttls' or 'ssl' "
            "(got 'tls')": _resources("smtp", {"security": "tls"}),
            "slack is enabled but 'webhook_url' is empty": _resources("slack", {"enabled": True}),
        }
        for message, run_config in refusals.items():
            refused = launch_run(port, {**params, "runConfigData": run_config})
            assert refused["__typename"] != "LaunchRunSuccess", refused
            shown = json.dumps(refused, ensure_ascii=False)
            assert message in shown, refused
            assert SECRET not in shown
        assert _run_ids(port) == []

        good = {**params, "runConfigData": _resources("smtp", {"smtp_port": 2525})}
        run_id = launch_and_wait(port, good)
        assert run_status(port, run_id) == "SUCCESS"
        assert _run_ids(port) == [run_id]
    manifest = json.loads((tmp_path / "storage" / "runs" / run_id / "manifest.json").read_text())
    assert manifest["overrides"] == ["notifications.email.smtp_port=2525"]
    # The launched run's console (the run worker's, in dagster dev's output) is short.
    lines = [line for line in console.read_text().splitlines() if run_id[:8] in line]
    assert any(line.endswith(" numbers: wrote numbers (rows=4)") for line in lines), lines
    assert [line for line in lines if '{"' in line] == []
