"""Docs and editor files stay true to the code: generated text must match what is shipped."""

from __future__ import annotations

import json

from recomart_pipeline.config.json_schema import config_json_schema
from recomart_pipeline.config.reference import BEGIN, END, render_reference
from recomart_pipeline_tests.conftest import REPO_ROOT

SHIPPED_CONFIGS = sorted(REPO_ROOT.glob("pipeline_config*.yaml"))
SCHEMA_COMMENT = "# yaml-language-server: $schema=./pipeline_config.schema.json"


def test_readme_config_reference_is_generated_from_the_schema():
    readme = (REPO_ROOT / "README.md").read_text()
    assert BEGIN in readme and END in readme, "README lacks the config reference markers"
    shipped = readme[readme.index(BEGIN) : readme.index(END) + len(END)]
    assert shipped == render_reference(), (
        "README config reference is stale: run `python -m recomart_pipeline config-reference`"
    )


def test_committed_json_schema_is_up_to_date():
    shipped = json.loads((REPO_ROOT / "pipeline_config.schema.json").read_text())
    assert shipped == config_json_schema(), "run `make schema` to regenerate it"


def test_shipped_configs_point_editors_at_the_schema():
    assert SHIPPED_CONFIGS
    for path in SHIPPED_CONFIGS:
        assert path.read_text().splitlines()[0] == SCHEMA_COMMENT, path.name


def test_shipped_configs_validate_against_the_json_schema():
    import jsonschema
    import yaml

    schema = config_json_schema()
    for path in SHIPPED_CONFIGS:
        data = yaml.safe_load(path.read_text())
        jsonschema.validate(data, schema)


def _documented_defaults(task: str) -> dict[str, str]:
    """key -> the default cell of one built-in task's table in the rendered reference."""
    text = render_reference()
    section = text.split(f"#### `{task}`\n", 1)[1].split("\n#### ", 1)[0]
    cells = [line.split(" | ") for line in section.splitlines() if line.startswith("| `config.")]
    return {row[0].removeprefix("| `config.").rstrip("`"): row[2] for row in cells}


def test_documented_validation_defaults_are_the_applied_ones():
    from pydantic import BaseModel

    from recomart_pipeline.tasks.specs.validation import Config

    documented = _documented_defaults("validation")
    applied = Config().model_dump(mode="json")
    rules = [
        name
        for name, field in Config.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    ]
    assert {"required_columns", "timestamp_parse", "future_timestamps", "null_rate"} <= set(rules)
    for rule in rules:
        for key, value in applied[rule].items():
            assert documented[f"{rule}.{key}"] == f"`{json.dumps(value)}`", f"{rule}.{key}"
    assert documented["null_rate.max_fraction"] == "`0.05`"
    assert documented["duplicates.severity"] == '`"WARN"`'
    assert documented["future_timestamps.max_future_skew"] == '`"P1D"`'


def test_validation_defaults_live_on_each_rules_own_fields():
    """No section is built with overrides of its class's defaults (they would go undocumented)."""
    from pydantic import BaseModel

    from recomart_pipeline.tasks.specs.validation import Config

    config = Config()
    for name, field in Config.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            assert getattr(config, name) == section(), name
