"""``depends_on`` is checked against the inputs and outputs tasks declare, at load time."""

from __future__ import annotations

import pytest

from recomart_pipeline import ConfigError, PipelineConfig
from recomart_pipeline_tests.conftest import REPO_ROOT, SAMPLE


def _issues(write_config, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        PipelineConfig(write_config(text))
    return [issue.render(context=False) for issue in caught.value.issues]


def test_the_shipped_configs_declare_every_edge():
    environ = {"SLACK_WEBHOOK_URL": "https://hooks.example/x", "SMTP_PASSWORD": "x"}
    for name in ("pipeline_config.yaml", "pipeline_config.prod.yaml", "pipeline_config.dev.yaml"):
        PipelineConfig(REPO_ROOT / name, environ=environ)


def test_a_missing_edge_names_the_input_and_the_task_that_makes_it(write_config):
    issues = _issues(
        write_config,
        f"""
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
          other: {{callable: "{SAMPLE}:make_numbers"}}
          square: {{callable: "{SAMPLE}:square", depends_on: []}}
        """,
    )
    assert len(issues) == 1
    assert "tasks.square.depends_on: task 'square' reads 'numbers', which none" in issues[0]
    assert "add 'numbers' or 'other' to tasks.square.depends_on" in issues[0]


def test_an_edge_the_task_reads_nothing_from_is_refused(write_config):
    issues = _issues(
        write_config,
        f"""
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
          flaky: {{callable: "{SAMPLE}:flaky"}}
          square: {{callable: "{SAMPLE}:square", depends_on: [numbers, flaky]}}
        """,
    )
    assert issues == [
        "pipeline_config.yaml:4 tasks.square.depends_on[1]: task 'square' depends on 'flaky' "
        "but reads none of its outputs (attempt)\n    hint: remove 'flaky' from "
        "tasks.square.depends_on, or declare the input 'square' reads from it (TaskSpec "
        "inputs / @pipeline_task(inputs=...))"
    ]


def test_two_makers_of_a_single_input_are_ambiguous(write_config):
    issues = _issues(
        write_config,
        f"""
        tasks:
          a: {{callable: "{SAMPLE}:make_numbers"}}
          b: {{callable: "{SAMPLE}:make_numbers"}}
          square: {{callable: "{SAMPLE}:square", depends_on: [a, b]}}
        """,
    )
    assert len(issues) == 1 and "reads one 'numbers', but a and b both make it" in issues[0]


def test_a_fan_in_input_takes_every_maker_and_a_disabled_task_is_not_checked(write_config):
    config = PipelineConfig(
        write_config(
            f"""
            tasks:
              a: {{callable: "{SAMPLE}:make_numbers"}}
              b: {{callable: "{SAMPLE}:make_numbers"}}
              merged: {{callable: "{SAMPLE}:merge_numbers", depends_on: [a, b]}}
              later: {{callable: "{SAMPLE}:square", enabled: false}}
            """
        )
    )
    assert config.settings.tasks["merged"].depends_on == ["a", "b"]


def test_built_in_tasks_are_checked_too(write_config):
    issues = _issues(
        write_config,
        """
        tasks:
          ingestion: {}
          validation: {depends_on: [ingestion]}
          preparation: {depends_on: [validation]}
          features: {depends_on: [preparation]}
          training: {depends_on: [preparation]}
        """,
    )
    assert len(issues) == 3  # train_ratings and train_implicit missing, preparation unused
    assert any("reads 'train_ratings'" in i and "add 'features'" in i for i in issues)
    assert any("depends on 'preparation' but reads none of its outputs" in i for i in issues)


def test_built_in_tasks_missing_from_an_uninstalled_tree_say_how_to_fix_it(
    write_config, monkeypatch
):
    from recomart_pipeline.contract import catalog

    monkeypatch.setattr(catalog, "_entry_points", dict)
    monkeypatch.setattr(catalog, "_own_entry_points", dict)
    issues = _issues(write_config, "tasks:\n  ingestion: {}\n")
    assert issues == [
        "pipeline_config.yaml:2 tasks.ingestion: 'ingestion' is not a built-in task\n"
        "    hint: the installation is incomplete: reinstall it (pip install -e .)"
    ]
