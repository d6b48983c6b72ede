"""Metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recomart_pipeline.ml.metrics import (
    bootstrap_intervals,
    hit_matrix,
    json_safe,
    mae,
    ranking_metrics,
    ranking_values,
    rmse,
)
from recomart_pipeline.ml.params import metric_names


def _relevant(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    users = [u for u, items in enumerate(rows) for _ in items]
    items = [i for row in rows for i in row]
    return sp.csr_matrix((np.ones(len(items)), (users, items)), shape=(len(rows), n_items))


def test_rmse_and_mae():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert math.isnan(rmse([], [])) and math.isnan(mae([], []))


def test_ranking_metrics_by_hand():
    # user 0: relevant {1, 3}; recommended [1, 2, 3] -> hits at ranks 1 and 3
    # user 1: relevant {4};    recommended [0, 2, 5] -> no hit
    recommended = np.array([[1, 2, 3], [0, 2, 5]])
    relevant = _relevant([[1, 3], [4]], n_items=10)
    result = ranking_metrics(recommended, relevant, k=3, n_items=10)
    dcg0 = 1 + 1 / math.log2(4)
    idcg0 = 1 + 1 / math.log2(3)
    ap0 = (1 / 1 + 2 / 3) / 2
    assert result["precision_at_3"] == pytest.approx((2 / 3 + 0) / 2)
    assert result["recall_at_3"] == pytest.approx((1.0 + 0) / 2)
    assert result["ndcg_at_3"] == pytest.approx((dcg0 / idcg0 + 0) / 2)
    assert result["map_at_3"] == pytest.approx((ap0 + 0) / 2)
    assert result["hit_rate_at_3"] == pytest.approx(0.5)
    assert result["coverage_at_3"] == pytest.approx(5 / 10)  # items 0, 1, 2, 3, 5


def test_perfect_lists_score_one_and_padding_counts_as_miss():
    relevant = _relevant([[2, 4], [7]], n_items=8)
    perfect = ranking_metrics(np.array([[4, 2], [7, -1]]), relevant, k=2, n_items=8)
    assert perfect["ndcg_at_2"] == pytest.approx(1.0)
    assert perfect["recall_at_2"] == pytest.approx(1.0)
    assert perfect["map_at_2"] == pytest.approx(1.0)
    assert perfect["precision_at_2"] == pytest.approx((1.0 + 0.5) / 2)


def test_users_without_held_out_items_are_ignored_and_short_lists_are_padded():
    relevant = _relevant([[0], []], n_items=3)
    result = ranking_metrics(np.array([[0], [1]]), relevant, k=2, n_items=3)
    assert result["precision_at_2"] == pytest.approx(0.5)
    assert result["hit_rate_at_2"] == 1.0
    assert result["coverage_at_2"] == pytest.approx(1 / 3)  # only evaluated users' lists
    empty = ranking_metrics(np.array([[1]]), _relevant([[]], 3), k=1, n_items=3)
    assert all(math.isnan(v) for v in empty.values())


def test_hit_matrix_never_matches_padding_against_the_previous_row():
    # key of (row 1, item -1) equals key of (row 0, item n_cols - 1): must not count
    relevant = _relevant([[2], [0]], n_items=3)
    hits = hit_matrix(np.array([[2, 0], [-1, 0]]), relevant)
    assert hits.tolist() == [[True, False], [False, True]]
    with pytest.raises(ValueError, match="rows"):
        hit_matrix(np.array([[0]]), relevant)


def test_metric_names_and_json_safety():
    assert metric_names(5) == [
        "rmse",
        "mae",
        "precision_at_5",
        "recall_at_5",
        "ndcg_at_5",
        "map_at_5",
        "hit_rate_at_5",
        "coverage_at_5",
    ]
    assert json_safe({"a": [float("nan"), 1.5], "b": np.float32("inf"), "c": "x"}) == {
        "a": [None, 1.5],
        "b": None,
        "c": "x",
    }


def test_bootstrap_intervals_bracket_the_mean_and_narrow_with_more_users():
    rng = np.random.default_rng(3)
    few = {"ndcg_at_10": rng.random(50)}
    many = {"ndcg_at_10": rng.random(5000)}
    low, high = bootstrap_intervals(few, resamples=300, seed=1)["ndcg_at_10"]
    assert low < few["ndcg_at_10"].mean() < high
    wide = high - low
    low, high = bootstrap_intervals(many, resamples=300, seed=1)["ndcg_at_10"]
    assert low < many["ndcg_at_10"].mean() < high
    assert high - low < wide / 5  # ~1/sqrt(100) as wide
    assert bootstrap_intervals(few, resamples=300, seed=1) == bootstrap_intervals(
        few, resamples=300, seed=1
    )


def test_per_user_values_average_to_the_reported_metrics():
    relevant = _relevant([[1, 2], [5], []], 8)
    recommended = np.array([[1, 3, 2], [0, 4, 6], [1, 2, 3]])
    values = ranking_values(recommended, relevant, k=3)
    metrics = ranking_metrics(recommended, relevant, k=3, n_items=8)
    assert values["recall_at_3"].tolist() == [1.0, 0.0]  # the user with nothing held out is out
    for name, per_user in values.items():
        assert metrics[name] == pytest.approx(per_user.mean())
