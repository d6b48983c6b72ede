"""A single-threaded model's validation fit (SVD's SGD) runs on the training task's side
thread while the other candidates validate: the same figures and files as validating them
one after another, and its failure still fails the task with its own message."""

from __future__ import annotations

import json
import threading

import pytest

from recomart_pipeline.contract.errors import TaskError
from recomart_pipeline.ml.svd import SVDRecommender
from recomart_pipeline.tasks import training

CANDIDATES = [
    {"model_type": "svd", "params": {"n_factors": 8, "n_epochs": 6, "learning_rate": 0.02}},
    {"model_type": "als", "params": {"n_factors": 8, "n_iterations": 4}},
    {"model_type": "bias"},
]


def _summary(run_model_task, features, monkeypatch, beside: bool) -> tuple[dict, list[str]]:
    """Train with SVD's validation fit beside the others or not; where SVD's fits ran."""
    threads: list[str] = []
    original = SVDRecommender._fit

    def recorded(self, train, on_epoch):
        threads.append(threading.current_thread().name)
        return original(self, train, on_epoch)

    monkeypatch.setattr(SVDRecommender, "_fit", recorded)
    monkeypatch.setattr(SVDRecommender, "serial_fit", beside)
    config = {"candidates": CANDIDATES, "validation": {"refit": "all"}}
    _, checkpoint = run_model_task(training, config, {"features": features})
    summary = json.loads(checkpoint.path("training_summary").read_text())
    return summary, threads


def test_the_side_fit_gives_the_figures_and_files_of_one_after_another(
    run_model_task, features, monkeypatch
):
    beside, beside_threads = _summary(run_model_task, features, monkeypatch, beside=True)
    serial, serial_threads = _summary(run_model_task, features, monkeypatch, beside=False)
    # validation fit on the side thread, the refit on all data in the task's own thread
    assert beside_threads[0].startswith("side-fit") and beside_threads[1] == "MainThread"
    assert serial_threads == ["MainThread", "MainThread"]
    for name in ("svd", "als", "bias"):
        assert beside["candidates"][name]["validation"] == serial["candidates"][name]["validation"]
        assert beside["candidates"][name]["sha256"] == serial["candidates"][name]["sha256"]
    assert beside["candidate_order"] == serial["candidate_order"]


def test_a_failing_side_fit_fails_the_task_with_its_message(run_model_task, features):
    candidates = [{"model_type": "svd", "params": {"learning_rate": 1e6}}, CANDIDATES[1]]
    with pytest.raises(TaskError, match="SGD diverged"):
        run_model_task(training, {"candidates": candidates}, {"features": features})
