"""A trained project (real data chain on a small generated data set), copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.runtime.runner import run_task
from recomart_pipeline_tests.helpers import DEFAULT_TASKS

UPSTREAM = DEFAULT_TASKS[:-2]  # everything before deploy and monitoring
CONFIG = """
tasks:
  ingestion: {}
  validation: {depends_on: [ingestion]}
  preparation: {depends_on: [validation]}
  features: {depends_on: [preparation]}
  training:
    depends_on: [features]
    config:
      candidates: [{name: als, model_type: als}, {name: popularity, model_type: popularity}]
  evaluation: {depends_on: [training, features]}
  inference: {depends_on: [evaluation, features]}
  report:
    depends_on: [validation, preparation, features, training, evaluation, inference]
  deploy:
    depends_on: [evaluation, features, report]
    config: {service: {mode: verify, startup_timeout_seconds: 60}}
  monitoring:
    depends_on: [preparation, evaluation, inference, deploy]
"""


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    generate_dataset(
        root / "data", users=150, items=60, interactions=6000, seed=4, file_format="csv"
    )
    (root / "pipeline_config.yaml").write_text(CONFIG)
    config = PipelineConfig(root / "pipeline_config.yaml")
    for task in UPSTREAM:
        run_task(config, task, "run-1")
    return root


@pytest.fixture
def trained(trained_template, tmp_path) -> PipelineConfig:
    """A private copy of the trained project, so tests may deploy and promote freely."""
    root = tmp_path / "project"
    shutil.copytree(trained_template, root)
    return PipelineConfig(root / "pipeline_config.yaml")


def set_deploy_config(config: PipelineConfig, text: str) -> PipelineConfig:
    path = config.path
    path.write_text(
        path.read_text().replace(
            "config: {service: {mode: verify, startup_timeout_seconds: 60}}", f"config: {text}"
        )
    )
    return PipelineConfig(path)
