"""Loading valid configs and reporting every kind of mistake with file, line and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from recomart_pipeline.config import ConfigError, PipelineConfig
from recomart_pipeline_tests.conftest import SAMPLE


def _errors(path: Path, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as excinfo:
        PipelineConfig(path, **kwargs)
    return excinfo.value


def _only(error: ConfigError):
    assert len(error.issues) == 1, error.render()
    return error.issues[0]


def test_minimal_file_with_only_tasks_is_valid(write_config):
    config = PipelineConfig(write_config(f'tasks:\n  a: {{callable: "{SAMPLE}:make_numbers"}}\n'))
    settings = config.settings
    assert settings.pipeline.name == "recomart_pipeline"
    assert settings.execution.mode == "sequential"
    assert settings.retry_policy.backoff_base == 2
    assert settings.tasks["a"].retry_delay == 2.0
    assert config.storage_root == config.project_root / "storage"


def test_path_comes_from_argument_then_env_then_cwd(write_config, tmp_path, monkeypatch):
    chosen = write_config(f'tasks:\n  fromenv: {{callable: "{SAMPLE}:make_numbers"}}\n', "env.yaml")
    write_config(f'tasks:\n  fromcwd: {{callable: "{SAMPLE}:make_numbers"}}\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIPELINE_CONFIG", raising=False)
    assert list(PipelineConfig().settings.tasks) == ["fromcwd"]
    monkeypatch.setenv("PIPELINE_CONFIG", str(chosen))
    assert list(PipelineConfig().settings.tasks) == ["fromenv"]
    assert list(PipelineConfig(tmp_path / "pipeline_config.yaml").settings.tasks) == ["fromcwd"]


def test_invalid_yaml_syntax_reports_line(write_config):
    path = write_config("tasks:\n  a:\n    enabled: [true\n  b: {}\n")
    issue = _only(_errors(path))
    assert issue.message.startswith("invalid YAML")
    assert issue.file == path
    assert issue.line is not None and issue.line >= 3


def test_unknown_key_suggests_the_right_one(write_config):
    path = write_config(
        f"""
        tasks:
          a:
            callable: "{SAMPLE}:make_numbers"
            timout_seconds: 5
        """
    )
    issue = _only(_errors(path))
    assert issue.key_path == ("tasks", "a", "timout_seconds")
    assert issue.line == 4
    assert "did you mean 'timeout_seconds'" in issue.hint


def test_unknown_section_suggests_the_right_one(write_config):
    path = write_config(
        f'tasks:\n  a: {{callable: "{SAMPLE}:make_numbers"}}\nloging:\n  level: INFO\n'
    )
    issue = _only(_errors(path))
    assert issue.key_path == ("loging",)
    assert "did you mean 'logging'" in issue.hint


def test_wrong_type_and_out_of_range_render_like_the_issue(write_config):
    path = write_config(
        f"""
        execution:
          max_retries: lots
        tasks:
          training:
            callable: "{SAMPLE}:make_numbers"
            retry_count: -1
        """
    )
    error = _errors(path)
    rendered = [issue.render(context=False) for issue in error.issues]
    assert rendered[0].startswith(
        "pipeline_config.yaml:2 execution.max_retries: expected an integer"
    )
    assert rendered[1] == "pipeline_config.yaml:6 tasks.training.retry_count: must be ≥ 0 (got -1)"


def test_unknown_dependency_cycle_and_bad_cron_are_reported_together(write_config):
    path = write_config(
        f"""
        tasks:
          a:
            callable: "{SAMPLE}:square"
            depends_on: [b]
          b:
            callable: "{SAMPLE}:square"
            depends_on: [a, ingestoin]
        scheduling:
          cron: "0 25 * * *"
          timezone: Mars/Base
        """
    )
    messages = {issue.message: issue for issue in _errors(path).issues}
    assert "depends on unknown task 'ingestoin'" in messages
    cycle = next(m for m in messages if m.startswith("dependency cycle"))
    assert cycle == "dependency cycle: a -> b -> a"
    assert any("hour field: 25 is outside 0-23" in m for m in messages)
    assert any("unknown time zone 'Mars/Base'" in m for m in messages)


def test_self_dependency_is_a_cycle(write_config):
    path = write_config(f'tasks:\n  a: {{callable: "{SAMPLE}:square", depends_on: [a]}}\n')
    assert _only(_errors(path)).message == "dependency cycle: a -> a"


def test_duplicate_task_names_and_keys_are_refused(write_config):
    path = write_config(
        f"""
        tasks:
          a:
            callable: "{SAMPLE}:square"
            enabled: true
            enabled: false
          a:
            callable: "{SAMPLE}:square"
        """
    )
    issues = _errors(path).issues
    assert [(i.key_path, i.line) for i in issues] == [
        (("tasks", "a", "enabled"), 5),
        (("tasks", "a"), 6),
    ]
    assert all("duplicate key" in i.message for i in issues)


def test_missing_environment_variable_is_named(write_config):
    path = write_config(
        f"""
        tasks:
          a: {{callable: "{SAMPLE}:make_numbers"}}
        notifications:
          slack:
            enabled: true
            webhook_url: ${{RECOMART_TEST_UNSET_WEBHOOK}}
        """
    )
    issue = next(i for i in _errors(path, environ={}).issues if "environment" in i.message)
    assert "environment variable 'RECOMART_TEST_UNSET_WEBHOOK' is not set" in issue.message
    assert issue.key_path == ("notifications", "slack", "webhook_url")
    assert issue.line == 6


def test_python_object_tags_are_refused(write_config, tmp_path):
    marker = tmp_path / "pwned"
    path = write_config(f'tasks:\n  a: !!python/object/apply:os.system ["touch {marker}"]\n')
    issue = _only(_errors(path))
    assert "not allowed" in issue.message
    assert not marker.exists()


def test_paths_escaping_the_project_are_refused(write_config):
    path = write_config(
        f'storage:\n  base_dir: ../../elsewhere\ntasks:\n  a: {{callable: "{SAMPLE}:make_numbers"}}\n'
    )
    issue = _only(_errors(path))
    assert issue.key_path == ("storage", "base_dir")
    assert "escapes the project folder" in issue.message


def test_unknown_task_without_callable_suggests_builtin(write_config):
    path = write_config("tasks:\n  trainning: {}\n")
    issue = _only(_errors(path))
    assert issue.message == "'trainning' is not a built-in task"
    assert issue.hint == "did you mean 'training'?"


def test_callable_that_does_not_exist_is_a_load_error(write_config):
    path = write_config('tasks:\n  a: {callable: "recomart_pipeline_tests.sample_tasks:nope"}\n')
    issue = _only(_errors(path))
    assert issue.key_path == ("tasks", "a", "callable")
    assert "has no function 'nope'" in issue.message


def test_task_config_is_validated_by_the_task_schema_at_load_time(write_config):
    path = write_config(
        f"""
        tasks:
          numbers:
            callable: "{SAMPLE}:make_numbers"
            config:
              count: -3
              cuont: 2
        """
    )
    issues = _errors(path).issues
    assert {(i.key_path, i.line) for i in issues} == {
        (("tasks", "numbers", "config", "count"), 5),
        (("tasks", "numbers", "config", "cuont"), 6),
    }
    assert any(i.hint and "did you mean 'count'" in i.hint for i in issues)


def test_error_render_shows_the_source_line_and_caret(write_config):
    path = write_config(f'tasks:\n  a: {{callable: "{SAMPLE}:make_numbers", retry_count: -1}}\n')
    text = _errors(path).render()
    assert "pipeline_config.yaml:2 tasks.a.retry_count: must be ≥ 0 (got -1)" in text
    assert "       2 |   a: {callable:" in text
    assert "^" in text


def test_empty_task_and_sections_mean_defaults(write_config):
    config = PipelineConfig(
        write_config(
            f"""
            logging:
            tasks:
              numbers:
                callable: "{SAMPLE}:make_numbers"
            """
        )
    )
    assert config.settings.logging.level == "INFO"
    assert config.task_config("numbers").count == 5


def test_yaml_booleans_as_task_names_get_a_quoting_hint(write_config):
    path = write_config(
        f'tasks:\n  off: {{callable: "{SAMPLE}:make_numbers"}}\n  b: {{callable: "{SAMPLE}:square", depends_on: [off]}}\n'
    )
    issues = _errors(path).issues
    assert any(
        i.message == "key False is not a string" and 'quote the key: "false"' in i.hint
        for i in issues
    )
    assert any("YAML read an unquoted yes/no/on/off as a boolean" in i.message for i in issues)
