"""A trained project (real data chain on a small generated data set), copied per test, and
the model service as a real process on 127.0.0.1 with everything it printed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.runtime.runner import run_task
from recomart_pipeline_tests.helpers import DEFAULT_TASKS, free_port, wait_until

# The admin token of services started by tests (read from this variable, never printed).
ADMIN_TOKEN_ENV = "RECOMART_TEST_ADMIN_TOKEN"
ADMIN_TOKEN = "adm1n-7f3c9a1e5b2d4c6f8a0b1c2d3e4f5a6b"
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
  evaluation:
    depends_on: [training, features]
    # these tests are about deploying a personalised model; on this small generated shop
    # popularity can win on validation, and the baseline fallback would deploy it instead
    config: {baseline_fallback: false}
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


def serve_command(config: Path, *options: str) -> list[str]:
    """The ``serve`` command of the project whose config is ``config``."""
    return [sys.executable, "-m", "recomart_pipeline", "serve", "--config", str(config), *options]


@dataclass
class Service:
    """A running service: its base URL, its process and the file holding its stdout+stderr."""

    base: str
    process: subprocess.Popen[bytes]
    output: Path

    def call(self, path: str, method: str = "GET", token: str | None = None) -> tuple[int, Any]:
        """(HTTP status, JSON body — or text when it is not JSON), whatever the status."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        request = urllib.request.Request(self.base + path, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def printed(self) -> str:
        return self.output.read_text(errors="replace")

    def answers(self) -> bool:
        assert self.process.poll() is None, f"the service exited:\n{self.printed()}"
        try:
            self.call("/health")
        except (urllib.error.URLError, OSError):
            return False
        return True


@contextmanager
def running_service(
    command: list[str], workdir: Path, env: dict[str, str] | None = None
) -> Iterator[Service]:
    """``command --port N`` on a free port until the block ends; yielded once /health answers
    (with any status: a service with no model to serve still answers)."""
    port = free_port()
    output = workdir / f"service-{port}.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--port", str(port)], stdout=sink, stderr=subprocess.STDOUT, env=env
        )
    service = Service(f"http://127.0.0.1:{port}", process, output)
    try:
        wait_until(service.answers, 60, "the service to answer /health")
        yield service
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
