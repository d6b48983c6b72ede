"""features -> training -> evaluation -> inference through the real runner and YAML loader."""

from __future__ import annotations

import pandas as pd

from recomart_pipeline import PipelineConfig
from recomart_pipeline.runtime.runner import run_task

CONFIG = """
pipeline:
  name: model_e2e
tasks:
  features:
    callable: "recomart_pipeline_tests.tasks_model.fixture_tasks:synthetic_features"
  training:
    depends_on: [features]
    config:
      model_type: collaborative_filtering_svd
      svd: {{n_factors: 8, n_epochs: 10, learning_rate: 0.02, regularization: 0.1}}
      train_test_split: 0.8
      save_model: true
      model_format: pickle
      model_name: collaborative_filtering
      candidates:
        - {{name: svd, model_type: collaborative_filtering_svd}}
        - {{name: als, model_type: als, params: {{n_factors: 8, n_iterations: 5}}}}
  evaluation:
    depends_on: [training, features]
    config:
      k: 10
      gates:
        min: {{ndcg_at_10: {min_ndcg}}}
        beat_baseline: {{ndcg_at_10: 0.10}}
  inference:
    depends_on: [evaluation, features]
    config: {{k: 5}}
"""


def _run(write_config, min_ndcg: float, until: str = "inference"):
    config = PipelineConfig(write_config(CONFIG.format(min_ndcg=min_ndcg)))
    tasks = list(config.specs)
    return {task: run_task(config, task, "r1") for task in tasks[: tasks.index(until) + 1]}


def test_the_model_stages_run_through_the_runner(write_config):
    outcomes = _run(write_config, min_ndcg=0.05)
    assert outcomes["evaluation"].failed_blocking_checks == []
    assert {c.name for c in outcomes["evaluation"].result.checks} == {
        "gate_min_ndcg_at_10",
        "gate_beat_baseline_ndcg_at_10",
    }
    assert outcomes["evaluation"].checkpoint.path("model").suffix == ".pkl"
    recs = pd.read_parquet(outcomes["inference"].checkpoint.path("recommendations"))
    assert len(recs) == 200 * 5


def test_a_failing_gate_is_a_failed_blocking_check(write_config):
    outcomes = _run(write_config, min_ndcg=0.99, until="evaluation")
    failed = outcomes["evaluation"].failed_blocking_checks
    assert [(c.name, c.passed, c.severity) for c in failed] == [
        ("gate_min_ndcg_at_10", False, "ERROR")
    ]
