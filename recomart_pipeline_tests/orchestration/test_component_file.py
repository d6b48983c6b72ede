"""A dg component file is a config file: the pipeline config is its ``attributes``, and
errors name the component file's own lines."""

from __future__ import annotations

import pytest

from recomart_pipeline import ConfigError, PipelineConfig
from recomart_pipeline_tests.conftest import SAMPLE

COMPONENT_FILE = f"""\
type: recomart_pipeline.orchestration.component.RecomartPipelineComponent

attributes:
  pipeline:
    name: shop_recs
  tasks:
    numbers:
      callable: "{SAMPLE}:make_numbers"
      config: {{count: COUNT}}
"""


def test_the_attributes_of_a_component_file_are_the_pipeline_config(tmp_path):
    path = tmp_path / "defs.yaml"
    path.write_text(COMPONENT_FILE.replace("COUNT", "3"))
    config = PipelineConfig(path)
    assert config.name == "shop_recs"
    assert config.task_config("numbers").count == 3
    assert config.project_root == tmp_path


def test_an_error_in_a_component_file_names_its_line(tmp_path):
    path = tmp_path / "defs.yaml"
    path.write_text(COMPONENT_FILE.replace("COUNT", "-1"))
    with pytest.raises(ConfigError) as refused:
        PipelineConfig(path)
    assert "defs.yaml:9" in str(refused.value)
    assert "tasks.numbers.config.count: must be ≥ 0 (got -1)" in str(refused.value)
