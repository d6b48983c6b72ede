"""Environment overlays (``extends``), ${VAR} interpolation and secrets."""

from __future__ import annotations

import json

import pytest

from recomart_pipeline.cli import main
from recomart_pipeline.config import ConfigError, PipelineConfig, environment_config_path
from recomart_pipeline_tests.conftest import REPO_ROOT, SAMPLE
from recomart_pipeline_tests.helpers import DEFAULT_TASKS, copy_default_project, guide_yaml_block

NUMBERS_TASK = f'  numbers: {{callable: "{SAMPLE}:make_numbers"}}\n'

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


# -- the guide's environment files, exactly as it prints them (no extends: line) -------------


@pytest.fixture
def guide_environments(tmp_path):
    """The default project with the guide's dev and prod files saved next to it verbatim."""
    copy_default_project(tmp_path, data_from=tmp_path)
    for env in ("dev", "prod"):
        name = f"pipeline_config.{env}.yaml"
        (tmp_path / name).write_text(guide_yaml_block(f"# {name}"))
    return tmp_path


def test_the_guides_environment_files_overlay_the_config_next_to_them(guide_environments):
    base = PipelineConfig(guide_environments / "pipeline_config.yaml")
    for env, level, timeout in (("dev", "DEBUG", 300), ("prod", "WARNING", 3600)):
        config = PipelineConfig(guide_environments / f"pipeline_config.{env}.yaml")
        assert list(config.settings.tasks) == DEFAULT_TASKS
        assert config.settings.tasks["training"].timeout_seconds == timeout
        assert config.settings.logging.level == level
        assert config.settings.pipeline.environment == env  # named by the file
        assert config.task_config("training") == base.task_config("training")
        assert [p.name for p in config.files] == [
            "pipeline_config.yaml",
            f"pipeline_config.{env}.yaml",
        ]
        assert config.notes == [
            f"pipeline_config.{env}.yaml: overlay of pipeline_config.yaml (environment "
            f"'{env}'; write 'extends: null' to load it alone)"
        ]


def test_validate_and_plan_say_once_that_the_file_is_an_overlay(guide_environments, capsys):
    dev = guide_environments / "pipeline_config.dev.yaml"
    note = "pipeline_config.dev.yaml: overlay of pipeline_config.yaml"
    assert main(["validate", str(dev), "--no-data"]) == 0
    out = capsys.readouterr().out
    assert out.count(note) == 1 and "valid (10 tasks, 10 will run)" in out
    assert main(["plan", str(dev)]) == 0
    out = capsys.readouterr().out
    assert out.count(note) == 1 and "pipeline recomart_pipeline (dev)" in out
    assert main(["plan", str(dev), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"][0].startswith(note)
    assert main(["validate", str(guide_environments / "pipeline_config.yaml"), "--no-data"]) == 0
    assert "overlay of" not in capsys.readouterr().out


def test_pipeline_config_variable_and_env_option_give_the_same_config(
    guide_environments, monkeypatch, capsys
):
    base = guide_environments / "pipeline_config.yaml"
    monkeypatch.setenv("PIPELINE_CONFIG", str(guide_environments / "pipeline_config.prod.yaml"))
    by_variable = PipelineConfig()
    assert main(["plan"]) == 0
    plan_by_variable = capsys.readouterr().out
    monkeypatch.delenv("PIPELINE_CONFIG")
    by_option = PipelineConfig(environment_config_path(base, "prod"))
    assert main(["plan", str(base), "--env", "prod"]) == 0
    assert capsys.readouterr().out == plan_by_variable
    assert by_variable.to_dict() == by_option.to_dict()
    assert by_variable.config_hash == by_option.config_hash
    assert by_option.settings.tasks["training"].timeout_seconds == 3600


def test_extends_null_makes_an_environment_file_stand_alone_and_says_what_is_missing(
    guide_environments,
):
    dev = guide_environments / "pipeline_config.dev.yaml"
    dev.write_text("extends: null\n" + dev.read_text())
    with pytest.raises(ConfigError) as excinfo:
        PipelineConfig(dev)
    issues = excinfo.value.issues
    assert {(i.file, i.line) for i in issues} == {(dev, 7)}  # training:
    assert sorted(i.message.split("'")[3] for i in issues) == ["train_implicit", "train_ratings"]
    assert all(i.message.startswith("task 'training' reads '") for i in issues)
    assert all("start it with 'extends: THAT_FILE.yaml'" in (i.hint or "") for i in issues)


def test_a_file_of_tasks_whose_inputs_come_from_nowhere_names_them(write_config):
    path = write_config(
        f'tasks:\n  square: {{callable: "{SAMPLE}:square"}}\n  training: {{timeout_seconds: 300}}\n',
        "training_only.yaml",
    )
    with pytest.raises(ConfigError) as excinfo:
        PipelineConfig(path)
    text = excinfo.value.render()
    assert "task 'square' reads 'numbers', which none of its dependencies (none) makes" in text
    assert "task 'training' reads 'train_ratings'" in text
    assert "task 'training' reads 'train_implicit'" in text
    # Such a file is most likely meant to change another config: the hint says how.
    assert text.count("if this file only changes another config, start it with 'extends: ") == 3


def test_an_environment_file_that_names_its_environment_keeps_it(guide_environments):
    prod = guide_environments / "pipeline_config.prod.yaml"
    prod.write_text(prod.read_text() + "pipeline:\n  environment: production-eu\n")
    assert PipelineConfig(prod).settings.pipeline.environment == "production-eu"


def test_errors_in_an_implicit_overlay_point_at_it(guide_environments):
    prod = guide_environments / "pipeline_config.prod.yaml"
    prod.write_text(prod.read_text().replace("3600", "-1"))
    with pytest.raises(ConfigError) as excinfo:
        PipelineConfig(prod)
    issue = excinfo.value.issues[0]
    assert (issue.file, issue.line) == (prod, 7)
    assert issue.key_path == ("tasks", "training", "timeout_seconds")


def test_a_dotted_file_without_its_base_is_loaded_alone(write_config):
    path = write_config(f"tasks:\n{NUMBERS_TASK}", "nightly.extra.yaml")
    config = PipelineConfig(path)
    assert config.notes == [] and [p.name for p in config.files] == ["nightly.extra.yaml"]
