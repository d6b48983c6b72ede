"""run_task: context, result checks, classification, structured logs and redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.contract.errors import classify_exception
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


def test_a_task_starts_on_upstream_files_it_reads_verified_and_ignores_the_rest(write_config):
    """Only declared inputs reach a task, so only they are hashed before it starts: a
    changed file it never opens does not stop it; a changed file it reads does."""
    path = write_config(
        f"""
        tasks:
          numbers: {{callable: "{SAMPLE}:numbers_with_notes"}}
          square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
        """
    )
    config = PipelineConfig(path)
    made = run_task(config, "numbers", "r1").checkpoint
    made.path("notes").write_text("changed")
    squares = run_task(config, "square", "r1").checkpoint.path("squares")
    assert json.loads(squares.read_text()) == [0, 1, 4]
    made.path("numbers").write_text("[666]")
    with pytest.raises(TaskFailure) as excinfo:
        run_task(config, "square", "r1")
    assert "'numbers'" in excinfo.value.message
    assert "was modified after it was written" in excinfo.value.message


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


# The orchestration plan's ten fields, plus the project's extras.
PLAN_FIELDS = (
    "run_id",
    "ts",
    "task",
    "level",
    "git_sha",
    "input_paths",
    "output_paths",
    "metrics",
    "duration_s",
    "status",
)


def _final_line(config: PipelineConfig, task: str) -> dict:
    lines = (config.project_root / "logs" / f"{task}.log").read_text().splitlines()
    return json.loads(lines[-1])


def test_structured_log_lines_carry_the_fields(sample_project):
    config = PipelineConfig(sample_project)
    run_task(config, "numbers", "run-42")
    run_task(config, "square", "run-42")
    lines = [
        json.loads(x)
        for x in (config.project_root / "logs" / "numbers.log").read_text().splitlines()
    ]
    assert [line["status"] for line in lines if "status" in line] == ["RUNNING", "SUCCESS"]
    final = _final_line(config, "square")
    for field in (*PLAN_FIELDS, "attempt", "correlation_id"):
        assert field in final, field
    assert final["run_id"] == "run-42" and final["task"] == "square"
    assert final["input_paths"]["numbers"][0].endswith("numbers.json")
    combined = (config.project_root / "logs" / "pipeline.log").read_text()
    assert "run-42" in combined


def test_the_final_line_of_a_failed_task_carries_the_plan_fields(write_config):
    path = write_config(f'tasks:\n  bad: {{callable: "{SAMPLE}:bad_schema"}}\n')
    config = PipelineConfig(path)
    with pytest.raises(TaskFailure):
        run_task(config, "bad", "r1")
    final = _final_line(config, "bad")
    assert [f for f in PLAN_FIELDS if f not in final] == []
    assert final["status"] == "FAILURE"


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


def test_manifest_and_metrics_record_every_attempt(sample_project):
    import csv

    from recomart_pipeline.contract.files import sha256_file
    from recomart_pipeline.runtime.records import load_manifests

    config = PipelineConfig(sample_project)
    for task in ["numbers", "square", "square_again", "total"]:
        run_task(config, task, "run-1")
    manifest = load_manifests(config.storage_root)[0]
    assert manifest["run_id"] == "run-1" and manifest["config_hash"] == config.config_hash
    assert manifest["environment_info"]["python"]
    assert any(p.startswith("dagster==") for p in manifest["environment_info"]["packages"])
    total = manifest["tasks"]["total"]
    assert total["status"] == "SUCCESS" and total["attempts_count"] == 1
    for outputs in (total["outputs"], manifest["tasks"]["square"]["outputs"]):
        for artifact in outputs.values():
            assert sha256_file(Path(artifact["path"])) == artifact["sha256"]
    assert set(total["inputs"]) == {"square", "square_again"}
    with (config.project_root / "metrics" / "numbers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["run_id"], r["status"], r["rows"], r["sum"]) for r in rows] == [
        ("run-1", "SUCCESS", "4", "6")
    ]
    run_task(config, "numbers", "run-2")
    with (config.project_root / "metrics" / "numbers.csv").open() as handle:
        assert [r["run_id"] for r in csv.DictReader(handle)] == ["run-1", "run-2"]


def test_failed_attempt_is_in_the_manifest_with_its_class(write_config):
    from recomart_pipeline.runtime.records import load_manifests

    path = write_config(f'tasks:\n  bad: {{callable: "{SAMPLE}:bad_schema"}}\n')
    config = PipelineConfig(path)
    with pytest.raises(TaskFailure):
        run_task(config, "bad", "r1")
    entry = load_manifests(config.storage_root)[0]["tasks"]["bad"]
    assert entry["status"] == "FAILURE" and entry["error_class"] == "schema_error"


def test_slow_task_is_flagged(write_config):
    path = write_config(
        f"""
        monitoring: {{performance: {{slow_task_threshold_seconds: 0.000001}}}}
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
        """
    )
    config = PipelineConfig(path)
    outcome = run_task(config, "numbers", "r1")
    assert outcome.result.metadata["slow_task"] is True
    assert "slow task: took" in (config.project_root / "logs" / "numbers.log").read_text()


def test_prometheus_textfile_shows_latest_attempts(sample_project):
    config = PipelineConfig(sample_project)
    run_task(config, "numbers", "r1")
    run_task(config, "numbers", "r2")
    text = (config.project_root / "metrics" / "recomart_pipeline.prom").read_text()
    labels = 'pipeline="sample",task="numbers"'
    assert f'recomart_task_status{{{labels},status="SUCCESS"}} 1' in text
    assert f"recomart_task_attempts_total{{{labels}}} 2" in text
    assert f'recomart_task_metric{{{labels},name="sum"}} 6' in text
    for line in text.splitlines():
        assert line.startswith("#") or line.rsplit(" ", 1)[1].replace(".", "").isdigit()


def test_disk_limits_fail_clearly_and_keep_previous_outputs(write_config):
    path = write_config(f'tasks:\n  numbers: {{callable: "{SAMPLE}:make_numbers"}}\n')
    config = PipelineConfig(path)
    before = run_task(config, "numbers", "r1").checkpoint
    path.write_text("resources: {max_disk_gb: 100000}\n" + path.read_text())
    with pytest.raises(TaskFailure) as excinfo:
        run_task(PipelineConfig(path), "numbers", "r2")
    assert excinfo.value.error_class == "disk_full"
    assert "free under" in excinfo.value.message
    before.verify()
    path.write_text(path.read_text().replace("100000", "0.0000000001"))
    with pytest.raises(TaskFailure, match=r"more than resources\.max_disk_gb"):
        run_task(PipelineConfig(path), "numbers", "r3")
    latest = json.loads((config.storage_root / "latest" / "numbers.json").read_text())
    assert latest["run_id"] == "r1"


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("undeclared_output", "wrote an undeclared output 'extra' (declared: summary)"),
        ("missing_output", "did not write its declared output(s) ['summary']"),
        ("invalid_document", "wrote 'summary' that is not a valid ReportSummary"),
        ("undeclared_input", "reads input 'squares' without declaring it"),
    ],
)
def test_a_task_that_breaks_its_contract_fails_and_publishes_nothing(write_config, how, message):
    config = PipelineConfig(
        write_config(
            f"""
            tasks:
              numbers: {{callable: "{SAMPLE}:make_numbers"}}
              breaks: {{callable: "{SAMPLE}:breaks_its_contract", depends_on: [numbers],
                        config: {{how: {how}}}}}
            """
        )
    )
    run_task(config, "numbers", "r1")
    with pytest.raises(TaskFailure) as excinfo:
        run_task(config, "breaks", "r1")
    assert message in excinfo.value.message
    assert excinfo.value.error_class == "task_error"
    assert not (config.storage_root / "latest" / "breaks.json").exists()


def test_the_same_task_within_its_contract_succeeds(write_config):
    config = PipelineConfig(
        write_config(
            f"""
            tasks:
              numbers: {{callable: "{SAMPLE}:make_numbers"}}
              breaks: {{callable: "{SAMPLE}:breaks_its_contract", depends_on: [numbers],
                        config: {{how: none}}}}
            """
        )
    )
    run_task(config, "numbers", "r1")
    outcome = run_task(config, "breaks", "r1")
    assert set(outcome.checkpoint.artifacts) == {"summary"}


def test_a_required_input_missing_upstream_fails_before_the_task_runs(write_config, tmp_path):
    config = PipelineConfig(
        write_config(
            f"""
            tasks:
              numbers: {{callable: "{SAMPLE}:make_numbers"}}
              square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
            """
        )
    )
    from recomart_pipeline.runtime.artifacts import Checkpoint

    empty = {"numbers": Checkpoint("numbers", "r0", {})}
    with pytest.raises(TaskFailure) as excinfo:
        run_task(config, "square", "r1", upstream=empty)
    assert excinfo.value.error_class == "upstream_artifact_error"
    assert "needs input 'numbers'" in excinfo.value.message


def test_the_manifest_shows_running_and_pending_while_a_run_is_under_way(write_config):
    path = write_config(
        f"""
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
          peek: {{callable: "{SAMPLE}:peek_manifest"}}
          later: {{callable: "{SAMPLE}:make_numbers"}}
        """
    )
    config = PipelineConfig(path)
    plan = ["numbers", "peek", "later"]
    run_task(config, "numbers", "r1", planned=plan)
    outcome = run_task(config, "peek", "r1", planned=plan)
    assert outcome.result.metadata["seen"] == {
        "numbers": "SUCCESS",
        "peek": "RUNNING",
        "later": "PENDING",
    }
