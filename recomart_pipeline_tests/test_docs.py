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
