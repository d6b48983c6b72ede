"""One contract, run over every registered model type (as implicit's RecommenderBase tests
are): a new model type gets these checks by being registered, with no test to copy."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from recomart_pipeline.ml.base import History, Recommender
from recomart_pipeline.ml.models import MODEL_TYPES, create_model
from recomart_pipeline.ml.params import MODEL_TYPE_INFO, model_type_info
from recomart_pipeline.ml.persistence import ModelFormatError, load_model, save_model
from recomart_pipeline_tests.ml.synthetic import SyntheticData, make_synthetic

TYPES = sorted(MODEL_TYPES)
# Few epochs/iterations: the contract is about shapes, determinism and files, not quality.
SMALL = {"n_factors": 4, "n_epochs": 3, "n_iterations": 2}


@pytest.fixture(scope="module")
def world() -> SyntheticData:
    return make_synthetic(n_users=60, n_items=40, per_user=12, seed=3)


def _model(model_type: str, **extra: object) -> Recommender:
    fields = MODEL_TYPES[model_type].Params.model_fields
    return create_model(model_type, {k: v for k, v in {**SMALL, **extra}.items() if k in fields})


@pytest.fixture(scope="module")
def fitted(world: SyntheticData) -> dict[str, Recommender]:
    models = {name: _model(name) for name in TYPES}
    for model in models.values():
        model.fit(world.train)
    return models


def test_every_model_class_is_described_for_config_validation():
    assert set(MODEL_TYPES) == set(MODEL_TYPE_INFO)
    for name, cls in MODEL_TYPES.items():
        info = model_type_info(cls.short_name)
        assert (info.model_type, info.params) == (name, cls.Params)


@pytest.mark.parametrize("model_type", TYPES)
def test_unknown_parameters_are_refused(model_type):
    with pytest.raises(ValidationError):
        create_model(model_type, {"no_such_parameter": 1})


@pytest.mark.parametrize("model_type", TYPES)
def test_an_unfitted_model_refuses_to_answer(model_type):
    model = create_model(model_type)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict([0], [0])


@pytest.mark.parametrize("model_type", TYPES)
def test_fit_report_and_shapes(fitted, world, model_type):
    model = fitted[model_type]
    assert (model.n_users, model.n_items) == (world.train.n_users, world.train.n_items)
    users = np.arange(5)
    predictions = model.predict(users, users)
    assert predictions.shape == (5,) and predictions.dtype == np.float32
    scores = model.score_items(users)
    assert scores.shape == (5, world.train.n_items) and np.isfinite(scores).all()


@pytest.mark.parametrize("model_type", TYPES)
def test_recommend_returns_best_first_unseen_items(fitted, world, model_type):
    model = fitted[model_type]
    seen = world.train.implicit
    users = np.arange(world.train.n_users)
    items, scores = model.recommend(users, 5, exclude=seen)
    assert items.shape == scores.shape == (users.size, 5)
    for user in users:
        row = items[user][items[user] >= 0]
        assert not set(row) & set(seen[user].indices)
        assert len(set(row)) == len(row)
        assert np.all(np.diff(scores[user][: len(row)]) <= 0)


@pytest.mark.parametrize("model_type", TYPES)
def test_recommend_ranks_what_score_items_scores(fitted, world, model_type):
    """``recommend`` (dense or sparse ranking, whichever the model uses) returns, for every
    user, the top of ``score_items`` without their seen items, ties to the lower index."""
    model, seen = fitted[model_type], world.train.implicit
    users = np.arange(model.n_users)
    k = min(10, model.n_items)
    items, scores = model.recommend(users, k, seen)
    dense = model.score_items(users)
    for user in users:
        allowed = np.setdiff1d(np.arange(model.n_items), seen[user].indices)
        best = allowed[np.argsort(-dense[user, allowed], kind="stable")[:k]]
        np.testing.assert_array_equal(items[user][: best.size], best)
        np.testing.assert_allclose(scores[user][: best.size], dense[user, best], rtol=1e-6)


@pytest.mark.parametrize("model_type", TYPES)
def test_the_same_seed_fits_the_same_model(world, model_type):
    first, second = _model(model_type, seed=7), _model(model_type, seed=7)
    first.fit(world.train)
    second.fit(world.train)
    users = np.arange(world.train.n_users)
    assert np.array_equal(first.score_items(users), second.score_items(users))


@pytest.mark.parametrize("model_type", TYPES)
def test_a_saved_model_loads_with_the_same_answers(fitted, tmp_path, model_type):
    model = fitted[model_type]
    path = tmp_path / f"{model_type}.npz"
    digest = save_model(model, path, model_format="npz")
    loaded = load_model(path, expected_sha256=digest)
    assert type(loaded) is type(model)
    users = np.arange(model.n_users)
    assert np.array_equal(loaded.score_items(users), model.score_items(users))


SPARSE_TYPES = [name for name in TYPES if "entries" in MODEL_TYPES[name].state_shapes.values()]


@pytest.mark.parametrize("model_type", SPARSE_TYPES)
@pytest.mark.parametrize("damage", ["index_out_of_range", "offsets_overrun"])
def test_a_file_with_damaged_sparse_state_is_refused(fitted, tmp_path, model_type, damage):
    """Sparse state is read by code that does not bounds-check: a model file whose offsets or
    indices point outside the matrix must be refused on load, naming the array."""
    model = fitted[model_type]
    arrays = model.to_arrays()
    prefix = next(n.removesuffix("_indptr") for n in arrays if n.endswith("_indptr"))
    if damage == "index_out_of_range":
        arrays[f"{prefix}_indices"] = arrays[f"{prefix}_indices"].copy()
        arrays[f"{prefix}_indices"][0] = 10**6
    else:
        arrays[f"{prefix}_indptr"] = arrays[f"{prefix}_indptr"].copy()
        arrays[f"{prefix}_indptr"][-1] += 5
    with pytest.raises(ValueError, match=prefix):
        type(model).from_arrays(model.params, model.n_users, model.n_items, arrays)
    damaged = type(model).from_arrays(model.params, model.n_users, model.n_items, model.to_arrays())
    damaged._state = {**damaged._state, **arrays}
    path = tmp_path / "damaged.npz"
    save_model(damaged, path)
    with pytest.raises(ModelFormatError, match=prefix):
        load_model(path)


@pytest.mark.parametrize("model_type", TYPES)
def test_a_users_own_history_folded_in_answers_like_the_user(fitted, world, model_type):
    """Strong generalization: every model type ranks for a user it never saw from a history
    alone. Given a training user's own training history (as if unseen), the answer skips the
    history's items and matches the model's answer for that user: exactly for models that
    score from the history or from item scores alone, closely for factor models (which solve
    a user factor against the fitted items instead of reading the learned one)."""
    model = fitted[model_type]
    seen = world.train.implicit
    history = History(seen, world.train.ratings)
    items, scores = model.recommend_history(history, 10)
    assert items.shape == scores.shape == (seen.shape[0], 10)
    for row in range(seen.shape[0]):
        answer = items[row][items[row] >= 0]
        assert answer.size == 10 and len(set(answer)) == 10
        assert not set(answer) & set(seen[row].indices)
        assert np.all(np.diff(scores[row]) <= 0)
    known, _ = model.recommend(np.arange(seen.shape[0]), 10, exclude=seen)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(known, items, strict=True)])
    assert overlap >= 0.5, f"{model_type}: fold-in shares {overlap:.0%} of the user's top 10"
    # A subset of rows answers the same as those rows of the whole history.
    subset, _ = model.recommend_history(history, 10, [5, 2])
    np.testing.assert_array_equal(subset, items[[5, 2]])
