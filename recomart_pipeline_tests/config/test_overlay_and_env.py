"""Environment overlays (``extends``), ${VAR} interpolation and secrets."""

from __future__ import annotations

import pytest

from recomart_pipeline.cli import main
from recomart_pipeline.config import ConfigError, PipelineConfig
from recomart_pipeline_tests.conftest import REPO_ROOT, SAMPLE

BASE = f"""
pipeline:
  name: base_pipeline
logging:
  level: INFO
  file: logs/base.log
tasks:
  numbers:
    callable: "{SAMPLE}:make_numbers"
    timeout_seconds: 60
    config: {{count: 3}}
  square:
    callable: "{SAMPLE}:square"
    depends_on: [numbers]
"""


def test_overlay_deep_merges_over_its_base(write_config):
    write_config(BASE)
    prod = write_config(
        """
        extends: pipeline_config.yaml
        pipeline:
          environment: prod
        logging:
          level: WARNING
        tasks:
          numbers:
            timeout_seconds: 3600
        """,
        "pipeline_config.prod.yaml",
    )
    config = PipelineConfig(prod)
    settings = config.settings
    assert settings.pipeline.name == "base_pipeline"
    assert settings.pipeline.environment == "prod"
    assert settings.logging.level == "WARNING"
    assert settings.logging.file == "logs/base.log"
    assert settings.tasks["numbers"].timeout_seconds == 3600
    assert config.task_config("numbers").count == 3
    assert settings.tasks["square"].depends_on == ["numbers"]
    assert [p.name for p in config.files] == ["pipeline_config.yaml", "pipeline_config.prod.yaml"]


def test_cli_env_option_picks_the_overlay_next_to_the_config(write_config, capsys):
    base = write_config(BASE)
    write_config(
        "extends: pipeline_config.yaml\npipeline: {environment: dev}\n", "pipeline_config.dev.yaml"
    )
    assert main(["plan", str(base), "--env", "dev"]) == 0
    assert "pipeline base_pipeline (dev) from" in capsys.readouterr().out
    assert main(["validate", str(base), "--env", "staging"]) == 2
    error = capsys.readouterr().err
    assert "environment 'staging' has no overlay file pipeline_config.staging.yaml" in error
    assert "environments found next to pipeline_config.yaml: dev;" in error


def test_errors_point_at_the_file_that_holds_the_value(write_config):
    write_config(BASE)
    dev = write_config(
        "extends: pipeline_config.yaml\ntasks:\n  numbers:\n    retry_count: -2\n",
        "pipeline_config.dev.yaml",
    )
    with pytest.raises(ConfigError) as excinfo:
        PipelineConfig(dev)
    issue = excinfo.value.issues[0]
    assert issue.file is not None and issue.file.name == "pipeline_config.dev.yaml"
    assert issue.line == 4


def test_extends_cycle_is_reported(write_config):
    write_config("extends: b.yaml\ntasks: {}\n", "a.yaml")
    b = write_config("extends: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="'extends' forms a cycle"):
        PipelineConfig(b)


def test_interpolation_with_defaults_and_escape(write_config):
    path = write_config(
        f"""
        pipeline:
          name: ${{PIPE_NAME}}
          description: "costs $${{NOT_A_VAR}}"
          environment: ${{PIPE_ENV:-dev}}
        tasks:
          numbers:
            callable: "{SAMPLE}:make_numbers"
            config: {{count: 2}}
        """
    )
    config = PipelineConfig(path, environ={"PIPE_NAME": "from_env"})
    assert config.settings.pipeline.name == "from_env"
    assert config.settings.pipeline.environment == "dev"
    assert config.settings.pipeline.description == "costs ${NOT_A_VAR}"


def test_interpolated_value_is_validated_like_a_literal(write_config):
    path = write_config(
        f'execution:\n  max_retries: ${{RETRIES}}\ntasks:\n  a: {{callable: "{SAMPLE}:make_numbers"}}\n'
    )
    assert PipelineConfig(path, environ={"RETRIES": "3"}).settings.execution.max_retries == 3
    with pytest.raises(ConfigError, match=r"execution\.max_retries: expected an integer"):
        PipelineConfig(path, environ={"RETRIES": "many"})


def test_secrets_are_masked_and_redacted(write_config):
    path = write_config(
        f"""
        tasks:
          a: {{callable: "{SAMPLE}:make_numbers"}}
        notifications:
          enabled: true
          slack:
            enabled: true
            webhook_url: ${{HOOK}}
          email:
            enabled: true
            recipients: [ops@example.com]
            username: bot
            password: ${{SMTP_PASSWORD}}
        """
    )
    hook = "https://hooks.example/T000/B000/very-secret-token"
    config = PipelineConfig(path, environ={"HOOK": hook, "SMTP_PASSWORD": "hunter2-secret"})
    assert config.settings.notifications.slack.webhook_url.get_secret_value() == hook
    dumped = str(config.to_dict())
    assert hook not in dumped and "hunter2-secret" not in dumped
    assert "very-secret-token" not in repr(config.settings)
    assert config.redact(f"posting to {hook} failed") == "posting to ********** failed"
    assert config.to_dict(reveal_secrets=True)["notifications"]["slack"]["webhook_url"] == hook


def test_enabled_slack_without_webhook_is_an_error(write_config):
    path = write_config(
        f'tasks:\n  a: {{callable: "{SAMPLE}:make_numbers"}}\nnotifications:\n  slack:\n    enabled: true\n'
    )
    with pytest.raises(ConfigError, match="webhook_url' is empty"):
        PipelineConfig(path)


def test_overlapping_retry_classes_are_an_error(write_config):
    path = write_config(
        f"""
        tasks:
          a: {{callable: "{SAMPLE}:make_numbers"}}
        retry_policy:
          retry_on_errors: [timeout]
          no_retry_on: [timeout, schema_eror]
        """
    )
    with pytest.raises(ConfigError) as excinfo:
        PipelineConfig(path)
    text = excinfo.value.render()
    assert "no_retry_on[1]: must be one of" in text
    assert "did you mean 'schema_error'" in text


def test_code_version_changes_only_with_the_tasks_settings(write_config):
    path = write_config(BASE)
    before = PipelineConfig(path)
    path.write_text(path.read_text().replace("count: 3", "count: 4"))
    after = PipelineConfig(path)
    assert before.task_code_version("numbers") != after.task_code_version("numbers")
    assert before.task_code_version("square") == after.task_code_version("square")


def test_an_overlay_in_another_folder_is_its_own_project(tmp_path):
    """A user's overlay extending the shipped config keeps data, storage and logs next to it."""
    project = tmp_path / "my_shop"
    project.mkdir()
    overlay = project / "pipeline_config.yaml"
    overlay.write_text(f"extends: {REPO_ROOT / 'pipeline_config.yaml'}\n")
    config = PipelineConfig(overlay)
    assert config.project_root == project
    assert config.storage_root == project / "storage"
    assert config.resolve_path("data/interactions.csv") == project / "data" / "interactions.csv"
