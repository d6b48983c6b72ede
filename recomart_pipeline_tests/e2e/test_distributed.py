"""A distributed executor for real: the pipeline on Dagster's dask executor (local cluster)."""

from __future__ import annotations

import json
import sys

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import run_in_project

pytestmark = pytest.mark.slow


def test_dask_executor_runs_the_pipeline(write_config):
    path = write_config(
        f"""
        execution:
          executor: dask
          executor_config: {{cluster: {{local: {{n_workers: 2, threads_per_worker: 1, processes: true}}}}}}
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers", timeout_seconds: 60}}
          square: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
          square_again: {{callable: "{SAMPLE}:square", depends_on: [numbers]}}
          total: {{callable: "{SAMPLE}:total", depends_on: [square, square_again]}}
        """
    )
    job = build_definitions(PipelineConfig(path)).resolve_job_def("automated_pipeline_job")
    assert job.executor_def.name == "dask_executor"
    project = path.parent
    done = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], project)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    latest = json.loads((project / "storage" / "latest" / "total.json").read_text())
    assert latest["metrics"] == {"total": 2 * sum(n * n for n in range(5))}
    with DagsterInstance.from_config(str(project / "dagster_home")) as instance:
        assert instance.get_runs(limit=1)[0].status == DagsterRunStatus.SUCCESS


def test_missing_executor_package_is_a_clear_error(write_config, monkeypatch):
    from recomart_pipeline.orchestration.executors import ExecutorUnavailableError

    path = write_config(
        f'execution: {{executor: celery}}\ntasks:\n  a: {{callable: "{SAMPLE}:make_numbers"}}\n'
    )
    monkeypatch.setitem(sys.modules, "dagster_celery", None)
    with pytest.raises(ExecutorUnavailableError, match=r'pip install -e "\.\[celery\]"'):
        build_definitions(PipelineConfig(path))
