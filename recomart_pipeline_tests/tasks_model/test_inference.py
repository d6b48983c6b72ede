"""The inference task: top-K per user, ids mapped back, seen items excluded, chunk-proof."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recomart_pipeline.ml.persistence import ModelIntegrityError
from recomart_pipeline.tasks import evaluation, inference, training

FAST = {
    "candidates": [
        {"model_type": "als", "params": {"n_factors": 8, "n_iterations": 4, "alpha": 5.0}}
    ]
}


@pytest.fixture
def evaluated(features, run_model_task):
    _, trained = run_model_task(training, FAST, {"features": features})
    _, checkpoint = run_model_task(evaluation, {}, {"training": trained, "features": features})
    return checkpoint


def _recommend(run_model_task, evaluated, features, config):
    return run_model_task(inference, config, {"evaluation": evaluated, "features": features})


def test_every_user_gets_k_unseen_items_best_first(run_model_task, evaluated, features, synthetic):
    result, checkpoint = _recommend(run_model_task, evaluated, features, {"k": 7})
    recs = pd.read_parquet(checkpoint.path("recommendations"))
    assert list(recs.columns) == ["user_id", "rank", "item_id", "score"]
    n_users = synthetic.train.n_users
    assert len(recs) == n_users * 7 and recs["user_id"].nunique() == n_users
    assert (recs.groupby("user_id")["rank"].apply(list) == [list(range(1, 8))] * n_users).all()
    assert (recs.groupby("user_id")["score"].diff().dropna() <= 0).all()

    seen = synthetic.train.implicit.tocoo()
    seen_pairs = {(f"u{u:04d}", f"i{i:04d}") for u, i in zip(seen.row, seen.col, strict=True)}
    pairs = set(zip(recs["user_id"], recs["item_id"], strict=True))
    assert not pairs & seen_pairs
    assert result.metrics["users"] == n_users and result.metrics["k"] == 7
    assert result.metrics["coverage"] == recs["item_id"].nunique() / synthetic.train.n_items


def test_chunking_does_not_change_the_output(run_model_task, evaluated, features):
    _, whole = _recommend(run_model_task, evaluated, features, {"k": 5})
    _, chunked = _recommend(run_model_task, evaluated, features, {"k": 5, "chunk_size": 13})
    a = pd.read_parquet(whole.path("recommendations"))
    b = pd.read_parquet(chunked.path("recommendations"))
    pd.testing.assert_frame_equal(
        a[["user_id", "rank", "item_id"]], b[["user_id", "rank", "item_id"]]
    )
    np.testing.assert_allclose(a["score"], b["score"], rtol=1e-6)


def test_writing_in_batches_does_not_change_the_output(
    run_model_task, evaluated, features, monkeypatch
):
    _, whole = _recommend(run_model_task, evaluated, features, {"k": 5})
    monkeypatch.setattr(inference, "WRITE_BATCH_USERS", 7)
    result, batched = _recommend(run_model_task, evaluated, features, {"k": 5})
    a = pd.read_parquet(whole.path("recommendations"))
    pd.testing.assert_frame_equal(a, pd.read_parquet(batched.path("recommendations")))
    assert result.metrics["rows"] == len(a)


def test_seen_items_come_back_when_exclusion_is_off(run_model_task, evaluated, features, synthetic):
    _, checkpoint = _recommend(
        run_model_task, evaluated, features, {"k": 10, "exclude_seen": False}
    )
    recs = pd.read_parquet(checkpoint.path("recommendations"))
    seen = synthetic.train.implicit.tocoo()
    seen_pairs = {(f"u{u:04d}", f"i{i:04d}") for u, i in zip(seen.row, seen.col, strict=True)}
    assert set(zip(recs["user_id"], recs["item_id"], strict=True)) & seen_pairs


def test_a_swapped_model_file_is_refused(run_model_task, evaluated, features):
    report = json.loads(evaluated.path("evaluation").read_text())
    assert report["model_sha256"]
    path = evaluated.path("model")
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError):
        _recommend(run_model_task, evaluated, features, {})
