"""run_task: context, result checks, classification, structured logs and redaction."""

from __future__ import annotations

import json

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.runtime.errors import classify_exception
from recomart_pipeline.runtime.runner import TaskFailure, run_task
from recomart_pipeline_tests.conftest import SAMPLE


def test_tasks_run_in_order_and_read_their_inputs(sample_project):
    config = PipelineConfig(sample_project)
    for task in ["numbers", "square", "square_again"]:
        run_task(config, task, "r1")
    outcome = run_task(config, "total", "r1")
    assert json.loads(outcome.checkpoint.path("total").read_text()) == 2 * (0 + 1 + 4 + 9)
    assert outcome.result.metrics == {"total": 28}


def test_failed_check_is_reported_and_missing_checks_count_as_failed(write_config):
    path = write_config(
        f'tasks:\n  numbers: {{callable: "{SAMPLE}:make_numbers", config: {{count: 3, minimum_sum: 100}}}}\n'
    )
    outcome = run_task(PipelineConfig(path), "numbers", "r1")
    assert [(c.name, c.passed, c.severity) for c in outcome.failed_blocking_checks] == [
        ("sum_large_enough", False, "ERROR")
    ]


def test_failure_is_classified_and_leaves_no_staging(write_config, tmp_path):
    path = write_config(f'tasks:\n  bad: {{callable: "{SAMPLE}:bad_schema"}}\n')
    config = PipelineConfig(path)
    with pytest.raises(TaskFailure) as excinfo:
        run_task(config, "bad", "r1")
    assert excinfo.value.error_class == "schema_error"
    assert "map it with column_mapping" in excinfo.value.message
    assert not any((config.storage_root / "runs" / "r1" / ".staging").iterdir())
    assert not (config.storage_root / "latest" / "bad.json").exists()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (FileNotFoundError("x"), "file_not_found"),
        (ConnectionRefusedError("x"), "connection_error"),
        (TimeoutError("x"), "timeout"),
        (MemoryError(), "memory_error"),
        (OSError(28, "No space left on device"), "disk_full"),
        (ValueError("x"), "unexpected_error"),
    ],
)
def test_builtin_exceptions_are_classified(exc, expected):
    assert classify_exception(exc) == expected


def test_structured_log_lines_carry_the_fields(sample_project):
    config = PipelineConfig(sample_project)
    run_task(config, "numbers", "run-42")
    lines = [
        json.loads(x)
        for x in (config.project_root / "logs" / "numbers.log").read_text().splitlines()
    ]
    assert [line["status"] for line in lines if "status" in line] == ["RUNNING", "SUCCESS"]
    final = lines[-1]
    for field in (
        "run_id",
        "ts",
        "task",
        "level",
        "attempt",
        "correlation_id",
        "git_sha",
        "output_paths",
        "metrics",
        "duration_s",
        "status",
    ):
        assert field in final, field
    assert final["run_id"] == "run-42" and final["task"] == "numbers"
    combined = (config.project_root / "logs" / "pipeline.log").read_text()
    assert "run-42" in combined


def test_secret_never_reaches_logs_or_error_messages(write_config, monkeypatch):
    secret = "xoxb-super-secret-value-123"
    monkeypatch.setenv("SAMPLE_SECRET", secret)
    path = write_config(
        f"""
        tasks:
          leak: {{callable: "{SAMPLE}:leaks_secret"}}
        notifications:
          slack: {{enabled: true, webhook_url: "${{SAMPLE_SECRET}}"}}
        """
    )
    config = PipelineConfig(path)
    with pytest.raises(TaskFailure) as excinfo:
        run_task(config, "leak", "r1")
    assert secret not in excinfo.value.message
    for log in (config.project_root / "logs").iterdir():
        text = log.read_text()
        assert secret not in text
        assert "**********" in text
