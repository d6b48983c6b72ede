"""The four data tasks with no ``config:`` at all, on the bundled sample in data/."""

from __future__ import annotations

from pathlib import Path

import pytest

from recomart_pipeline.runtime.artifacts import ArtifactStore, Checkpoint
from recomart_pipeline_tests.data.helpers import REPO_ROOT, TaskHarness, artifact_hashes

CHAIN = ("ingestion", "validation", "preparation", "features")


def _run_chain(root: Path, run_id: str) -> dict[str, tuple]:
    harness = TaskHarness(ArtifactStore(root), REPO_ROOT, run_id=run_id)
    done: dict[str, tuple] = {}
    upstream: dict[str, Checkpoint] = {}
    for task in CHAIN:
        result, checkpoint = harness.run(task, None, upstream)
        done[task] = (result, checkpoint)
        upstream = {task: checkpoint}
    return done


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    return _run_chain(tmp_path_factory.mktemp("chain"), "first")


def test_defaults_work_on_the_bundled_sample(chain: dict[str, tuple]) -> None:
    validation = chain["validation"][0]
    assert all(check.passed for check in validation.checks), validation.checks
    assert validation.metrics["rows_quarantined"] == 500
    features = chain["features"][0].metrics
    assert features["n_users"] > 900 and features["n_items"] == 400
    assert features["train_ratings"] > 5000 and features["test_interactions"] > 1000


def test_the_whole_chain_is_reproducible(chain: dict[str, tuple], tmp_path: Path) -> None:
    again = _run_chain(tmp_path, "second")
    for task in CHAIN:
        assert artifact_hashes(again[task][1]) == artifact_hashes(chain[task][1]), task
