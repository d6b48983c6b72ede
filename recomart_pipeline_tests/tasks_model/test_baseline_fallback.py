"""When no personalised model beats popularity, the service still answers: deploy serves the
baseline (marked as such) when there is no champion, and keeps the champion when there is."""

from __future__ import annotations

import json

from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline.tasks import deploy, evaluation, training
from recomart_pipeline_tests.tasks_model.test_evaluation import CANDIDATES, _with_validation

LOSING = {"svd": 0.1, "als": 0.2, "popularity": 0.5}
WINNING = {"svd": 0.1, "als": 0.9, "popularity": 0.5}
GATES = {"gates": {"beat_baseline": {"ndcg_at_10": 0.10}}}


def _deploy(run_model_task, store, trained, features, figures, registry):
    forged = _with_validation(store, trained, figures)
    _, evaluated = run_model_task(evaluation, GATES, {"training": forged, "features": features})
    config = {"registry_dir": str(registry), "service": {"mode": "none"}}
    result, checkpoint = run_model_task(
        deploy, config, {"evaluation": evaluated, "features": features}
    )
    return result, json.loads(checkpoint.path("deployment").read_text())


def test_with_no_champion_the_baseline_is_deployed_and_marked(
    run_model_task, store, features, tmp_path
):
    _, trained = run_model_task(training, CANDIDATES, {"features": features})
    registry = tmp_path / "registry"
    result, deployment = _deploy(run_model_task, store, trained, features, LOSING, registry)
    assert deployment["status"] == "promoted" and deployment["baseline_fallback"] is True
    champion = ModelRegistry(registry).champion()
    assert champion is not None and champion.model_type == "popularity"
    assert champion.config["baseline_fallback"] is True
    assert "service_marker" in result.outputs


def test_with_a_champion_it_is_kept(run_model_task, store, features, tmp_path):
    _, trained = run_model_task(training, CANDIDATES, {"features": features})
    registry = tmp_path / "registry"
    _, first = _deploy(run_model_task, store, trained, features, WINNING, registry)
    assert first["status"] == "promoted" and first["baseline_fallback"] is False
    champion = ModelRegistry(registry).champion()
    assert champion is not None and champion.model_type == "als"
    _, second = _deploy(run_model_task, store, trained, features, LOSING, registry)
    assert second["status"] == "kept_champion" and second["champion"] == champion.version
    assert second["baseline_fallback"] is False
    assert ModelRegistry(registry).champion().version == champion.version
