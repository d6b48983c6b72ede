"""The guide's statuses in the JSONL logs and the run manifest of a Dagster run: RETRYING
with the wait between attempts, and the tasks a final failure stops as SKIPPED with why."""

from __future__ import annotations

import json

from dagster import DagsterInstance

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.runtime.records import read_manifest
from recomart_pipeline_tests.conftest import SAMPLE


def _execute(path):
    config = PipelineConfig(path)
    result = (
        build_definitions(config)
        .resolve_job_def("automated_pipeline_job")
        .execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)
    )
    return config, result, read_manifest(config.storage_root, result.run_id) or {}


def test_a_retried_task_logs_retrying_with_the_wait(write_config):
    path = write_config(
        f"""
        retry_policy: {{backoff_base: 2, max_backoff: 0.2, jitter: 0}}
        tasks:
          flaky: {{callable: "{SAMPLE}:flaky", retry_count: 3, retry_delay: 0.05}}
        """
    )
    config, result, manifest = _execute(path)
    assert result.success
    lines = [
        json.loads(x) for x in (config.project_root / "logs/flaky.log").read_text().splitlines()
    ]
    statuses = [(line["status"], line.get("retry_in_s")) for line in lines if "status" in line]
    assert statuses == [
        ("RUNNING", None),
        ("FAILURE", None),
        ("RETRYING", 0.05),
        ("RUNNING", None),
        ("FAILURE", None),
        ("RETRYING", 0.1),
        ("RUNNING", None),
        ("SUCCESS", None),
    ]
    entry = manifest["tasks"]["flaky"]
    assert entry["status"] == "SUCCESS" and "retry_in_s" not in entry
    assert [a["status"] for a in entry["attempts"]] == ["FAILURE", "FAILURE", "SUCCESS"]


def test_a_final_failure_marks_what_will_not_start_as_skipped(write_config):
    path = write_config(
        f"""
        execution: {{mode: sequential, continue_on_error: false}}
        tasks:
          a_bad: {{callable: "{SAMPLE}:bad_schema"}}
          b_after: {{callable: "{SAMPLE}:total", depends_on: [a_bad]}}
          c_independent: {{callable: "{SAMPLE}:make_numbers"}}
        """
    )
    _, result, manifest = _execute(path)
    assert not result.success
    tasks = manifest["tasks"]
    assert tasks["a_bad"]["status"] == "FAILURE"
    final = (path.parent / "logs" / "a_bad.log").read_text().splitlines()[-1]
    assert json.loads(final)["final"] == "error class 'schema_error' is not retried"
    assert tasks["b_after"] == {
        "status": "SKIPPED",
        "attempts": [],
        "reason": "dependency 'a_bad' failed",
    }
    assert tasks["c_independent"]["status"] == "SKIPPED"
    assert "fail-fast" in tasks["c_independent"]["reason"]
