"""Screening on validation: a candidate clearly behind the leader stops after the screening
block; every other candidate gets exactly the figures of ranking every user at once."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recomart_pipeline.ml.evaluate import evaluate_model, evaluation_users
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.screening import (
    HeldOut,
    Leader,
    Screen,
    finish,
    sample,
    screens,
    standard_errors_behind,
    validate,
)
from recomart_pipeline_tests.ml.synthetic import SyntheticData, make_synthetic

K = 10
METRIC = f"ndcg_at_{K}"


@pytest.fixture(scope="module")
def world() -> SyntheticData:
    return make_synthetic(n_users=900, n_items=150, per_user=25, seed=4)


@pytest.fixture(scope="module")
def models(world: SyntheticData) -> dict:
    """A strong personalised model, a twin of it, and a model that ranks far worse."""
    fitted = {
        "item_knn": create_model("item_knn", {"k": 50}),
        "twin": create_model("item_knn", {"k": 50}),
        "bias": create_model("baseline_bias"),
    }
    for model in fitted.values():
        model.fit(world.train)
    return fitted


def _held_out(world) -> HeldOut:
    return HeldOut(
        world.test_ratings,
        world.test_interactions,
        world.train.interactions(),
        K,
        evaluation_users(world.test_interactions),
    )


def _validate(world, model, screen, leader=None):
    held = _held_out(world)
    if screen is None:
        return validate(model, held)
    return finish(sample(model, held, screen), held, screen, leader)


def _evaluate(world, model, users=None):
    held = _held_out(world)
    return evaluate_model(
        model,
        test_ratings=held.ratings,
        test_interactions=held.interactions,
        exclude=held.exclude,
        k=K,
        users=held.users if users is None else users,
    ).metrics


def _plan(world, block=300, margin=5.0):
    n = evaluation_users(world.test_interactions).size
    screen = Screen.plan(n, block, METRIC, K, margin, seed=7)
    assert screen is not None
    return screen


def _lead(world, models, screen, name="item_knn"):
    scored = _validate(world, models[name], screen)
    assert scored.values is not None and scored.behind is None
    return Leader(name, scored.metrics[METRIC], scored.values)


def test_the_plan_is_a_seeded_partition_of_the_users():
    screen = Screen.plan(1000, 300, METRIC, K, 5.0, seed=3)
    assert screen is not None
    assert screen.block.size == 300 and screen.rest.size == 700
    assert np.all(np.diff(screen.block) > 0) and np.all(np.diff(screen.rest) > 0)
    np.testing.assert_array_equal(np.sort(np.r_[screen.block, screen.rest]), np.arange(1000))
    again = Screen.plan(1000, 300, METRIC, K, 5.0, seed=3)
    assert again is not None and np.array_equal(again.block, screen.block)
    other = Screen.plan(1000, 300, METRIC, K, 5.0, seed=4)
    assert other is not None and not np.array_equal(other.block, screen.block)
    # the block is a sample of all the users, not the first (lowest-index) ones
    assert screen.block.max() > 900 and screen.block.min() < 100


def test_no_plan_where_screening_saves_nothing_or_does_not_apply():
    assert Screen.plan(300, 300, METRIC, K, 5.0, 0) is None  # no users beyond the block
    assert Screen.plan(1000, None, METRIC, K, 5.0, 0) is None  # switched off
    for metric in ("rmse", "mae", f"coverage_at_{K}", "ndcg_at_20"):
        assert not screens(metric, K)
        assert Screen.plan(1000, 300, metric, K, 5.0, 0) is None
    for name in ("precision", "recall", "ndcg", "map", "hit_rate"):
        assert screens(f"{name}_at_{K}", K)


def test_standard_errors_of_the_paired_difference():
    rng = np.random.default_rng(0)
    leader = rng.random(400)
    candidate = leader - 0.05 + rng.normal(0, 0.1, 400)
    differences = leader - candidate
    expected = differences.mean() / (differences.std(ddof=1) / math.sqrt(400))
    assert standard_errors_behind(candidate, leader) == pytest.approx(expected)
    assert standard_errors_behind(leader, leader) == 0.0
    quarters = np.arange(400) / 4  # exact in binary: the gap below is the same for every user
    assert standard_errors_behind(quarters - 0.5, quarters) == math.inf
    assert standard_errors_behind(quarters + 0.5, quarters) == 0.0  # ahead everywhere


def test_without_screening_or_a_leader_the_figures_are_those_of_ranking_everyone(world, models):
    screen = _plan(world)
    for model in models.values():
        everyone = _evaluate(world, model)
        unscreened = _validate(world, model, None)
        first_of_its_kind = _validate(world, model, screen)
        np.testing.assert_equal(unscreened.metrics, everyone)
        np.testing.assert_equal(first_of_its_kind.metrics, everyone)  # bit for bit
        assert first_of_its_kind.behind is None
        assert first_of_its_kind.users == screen.block.size + screen.rest.size


def test_a_candidate_clearly_behind_stops_after_the_block(world, models):
    screen = _plan(world)
    leader = _lead(world, models, screen)
    scored = _validate(world, models["bias"], screen, leader)
    assert scored.behind is not None and scored.values is None
    assert scored.users == screen.block.size
    assert scored.behind.leader == "item_knn" and scored.behind.standard_errors > 5.0
    # its figures are those of the block's users, and below the leader's
    block_users = evaluation_users(world.test_interactions)[screen.block]
    np.testing.assert_equal(scored.metrics, _evaluate(world, models["bias"], block_users))
    sampled = sample(models["bias"], _held_out(world), screen)
    assert sampled.figure == scored.metrics[METRIC]
    assert scored.metrics[METRIC] == scored.behind.figure < leader.figure
    # the same candidate against a much wider margin is ranked for everyone
    wide = _validate(world, models["bias"], _plan(world, margin=1e6), leader)
    assert wide.behind is None
    np.testing.assert_equal(wide.metrics, _evaluate(world, models["bias"]))


def test_a_candidate_level_with_the_leader_is_ranked_for_everyone(world, models):
    screen = _plan(world)
    leader = _lead(world, models, screen)
    twin = _validate(world, models["twin"], screen, leader)
    assert twin.behind is None
    np.testing.assert_equal(twin.metrics, _evaluate(world, models["twin"]))
    np.testing.assert_array_equal(twin.values, leader.values)


def test_a_candidate_whose_block_figure_reaches_the_leaders_is_not_stopped(world, models):
    """Stopping needs the block figure below the leader's recorded one, so that selection,
    which compares recorded figures, can never pick a stopped candidate."""
    screen = _plan(world)
    leader = _lead(world, models, screen)
    bias_block = _validate(world, models["bias"], screen, leader).metrics[METRIC]
    low_leader = Leader(leader.name, bias_block, leader.values)
    scored = _validate(world, models["bias"], screen, low_leader)
    assert scored.behind is None and scored.users > screen.block.size
