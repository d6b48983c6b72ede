"""benchmarks/vs_implicit.py cannot rot: implicit's models and ours run on one split, scored by
our metric code, and the wrappers rank exactly as implicit does."""

from __future__ import annotations

import json
import runpy
from typing import Any

import numpy as np
import pytest

from recomart_pipeline_tests.conftest import REPO_ROOT

pytest.importorskip(
    "implicit",
    reason="implicit (the bench extra of requirements-dev.txt) is not installed: "
    "pip install -r requirements-dev.txt",
)


def _module() -> dict[str, Any]:
    return runpy.run_path(str(REPO_ROOT / "benchmarks" / "vs_implicit.py"))


def test_the_comparison_scores_ours_and_implicits_models_on_one_split(tmp_path):
    module = _module()
    out = tmp_path / "vs_implicit.json"
    module["main"](["--generate", "400,120,8000", "--movielens-shaped", "--json", str(out)])
    written = json.loads(out.read_text())
    assert written["versions"]["implicit"].startswith("0.7")
    shop, movielens = written["datasets"]
    expected = set(module["OURS"]) | set(module["THEIRS"])
    for result in (shop, movielens):
        assert result["test_pairs"] + result["test_pairs_dropped_unknown"] == -(
            -result["pairs"] // 5
        )
        assert set(result["models"]) == expected
        for figures in result["models"].values():
            assert 0 < figures["ndcg_at_10"] <= 1 and figures["fit_seconds"] >= 0
    # the same objective (implicit's c = alpha·m with alpha 2 is our c = 1 + 1·m) gives the
    # same quality: the split, the wrapper and the parameter mapping line up
    ours, theirs = movielens["models"]["als"], movielens["models"]["implicit_als_alpha2"]
    assert ours["ndcg_at_10"] == pytest.approx(theirs["ndcg_at_10"], abs=0.02)
    # cosine item-kNN with 200 neighbours (without our shrinkage) is one algorithm in both
    for result in (shop, movielens):
        models = result["models"]
        assert models["item_knn_plain"]["ndcg_at_10"] == pytest.approx(
            models["implicit_cosine"]["ndcg_at_10"], abs=1e-3
        )


def test_the_agreement_check_rejects_a_wrapper_that_ranks_differently():
    module = _module()
    rng = np.random.default_rng(0)
    dense = (rng.random((60, 40)) < 0.3).astype(np.float32)
    users, items = np.nonzero(dense)
    from scipy import sparse as sp

    from recomart_pipeline.ml.base import Ratings, TrainingData

    train = TrainingData(60, 40, Ratings(users, items, np.ones(users.size)), sp.csr_matrix(dense))
    for params in (module["THEIRS"]["implicit_als"], module["THEIRS"]["implicit_bm25"]):
        model = module["implicit_model"](params)
        model.fit(train)
        module["check_agrees_with_implicit"](model, train)  # the faithful wrapper passes
        if "user_factors" in model._state:
            model._state["user_factors"] = model._state["user_factors"][::-1].copy()
        else:
            model._history = model._history[::-1]
        with pytest.raises(AssertionError):
            module["check_agrees_with_implicit"](model, train)


def test_a_latent_world_reports_its_ceiling_above_every_trained_model():
    module = _module()
    label, pairs, truth = module["movielens_shaped"]("200,150,25")
    result = module["benchmark"](label, pairs, truth=truth)
    figures = {name: m["ndcg_at_10"] for name, m in result["models"].items()}
    ceiling = figures.pop("known_scores")
    assert ceiling > max(figures.values()) > figures["popularity"]
