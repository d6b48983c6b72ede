"""item_knn's ``shrinkage: auto``: h = 0.1 / density of the training matrix, resolved at fit
time and kept in the model file; files written before it was kept still load.

Why a rule instead of a number: a fixed h = 100 lost 10 % NDCG on MovieLens-shaped data
(items with tens of users) to gain at 5M events on a long-tailed shop (BENCHMARKS.md)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import scipy.sparse as sp

from recomart_pipeline.contract.errors import SchemaError
from recomart_pipeline.ml import knn
from recomart_pipeline.ml.base import Ratings, TrainingData
from recomart_pipeline.ml.knn import ItemKNNRecommender
from recomart_pipeline.ml.params import ITEM_KNN, FloatRange, ItemKNNParams, check_search_space
from recomart_pipeline.ml.persistence import load_model, save_model
from recomart_pipeline_tests.ml.synthetic import make_synthetic
from recomart_pipeline_tests.ml.test_item_models import _ndcg


def _training(dense: np.ndarray) -> TrainingData:
    users, items = np.nonzero(dense)
    values = dense[users, items]
    shape = dense.shape
    return TrainingData(shape[0], shape[1], Ratings(users, items, values), sp.csr_matrix(dense))


def test_auto_is_a_tenth_of_the_inverse_density_of_users_and_items_with_interactions():
    # 5 user rows (the last inactive) x 6 item columns (the last never bought), and an
    # explicitly stored zero that is not an interaction: 4 active users, 5 active items,
    # 8 interactions, so h = 0.1 · 4 · 5 / 8 = 0.25
    dense = np.zeros((5, 6), np.float32)
    dense[0, [0, 1, 2]] = 1.0
    dense[1, [1, 3]] = 1.0
    dense[2, [4]] = 2.0
    dense[3, [0, 4]] = 1.0
    matrix = sp.csr_matrix(dense)
    with_zero = sp.csr_matrix(
        (np.append(matrix.data, 0.0), np.append(matrix.indices, 5), [*matrix.indptr[:-1], 9]),
        shape=(5, 6),
    )
    assert knn.auto_shrinkage(matrix) == pytest.approx(0.25)
    assert knn.auto_shrinkage(with_zero) == pytest.approx(0.25)
    assert knn.auto_shrinkage(sp.csr_matrix((3, 3))) == 0.0
    model = ItemKNNRecommender()  # auto is the default
    model.fit(_training(dense))
    assert model.fitted_shrinkage == pytest.approx(0.25)
    # only cosine is shrunk; a number is used as it is
    for params, expected in [({"weighting": "bm25"}, 0.0), ({"shrinkage": 7}, 7.0)]:
        model = ItemKNNRecommender(params)
        model.fit(_training(dense))
        assert model.fitted_shrinkage == expected


def test_auto_fits_the_model_of_the_number_it_resolves_to():
    data = make_synthetic(n_users=120, n_items=60, per_user=12, seed=3)
    auto = ItemKNNRecommender({"shrinkage": "auto", "k": 20})
    auto.fit(data.train)
    h = auto.fitted_shrinkage
    assert h > 0
    explicit = ItemKNNRecommender({"shrinkage": h, "k": 20})
    explicit.fit(data.train)
    for name, array in auto.to_arrays().items():
        np.testing.assert_array_equal(array, explicit.to_arrays()[name], err_msg=name)
    plain = ItemKNNRecommender({"shrinkage": 0.0, "k": 20})
    plain.fit(data.train)
    assert not np.array_equal(
        plain.to_arrays()["similarity_data"], auto.to_arrays()["similarity_data"]
    )


def _long_tail_world(padding: int) -> TrainingData:
    """Item 0: 4 users. Item 1: one user, who also has item 0 (plain cosine 1/2). Item 2: 400
    users, 3 of them item 0's (plain cosine 3/40); user 401 has nothing. Then ``padding``
    one-user items, each its own user's only item: they co-occur with nothing but make the
    matrix sparser."""
    dense = np.zeros((402 + padding, 3 + padding), np.float32)
    dense[:4, 0] = 1.0
    dense[0, 1] = 1.0
    dense[1:401, 2] = 1.0
    dense[402 + np.arange(padding), 3 + np.arange(padding)] = 1.0
    return _training(dense)


def _top_neighbour_of_item_0(model: ItemKNNRecommender) -> int:
    arrays = model.to_arrays()
    start, stop = arrays["similarity_indptr"][:2]
    assert stop - start == 1
    return int(arrays["similarity_indices"][start])


def test_auto_shrinks_a_one_user_coincidence_away_only_in_a_sparse_catalogue():
    dense_world, sparse_world = _long_tail_world(0), _long_tail_world(2000)
    model = ItemKNNRecommender({"k": 1})
    model.fit(dense_world)  # density 1/3 (401 active users): h 0.3, as plain cosine
    assert model.fitted_shrinkage == pytest.approx(0.1 * 401 * 3 / 405)
    assert _top_neighbour_of_item_0(model) == 1
    model.fit(sparse_world)  # density 1/2000: h 200, the evidence of 3 shared users wins
    assert model.fitted_shrinkage == pytest.approx(0.1 * 2401 * 2003 / 2405)
    assert _top_neighbour_of_item_0(model) == 2


def test_auto_keeps_plain_cosines_quality_where_a_fixed_100_loses_it():
    # the tests' MovieLens-shaped world (real_shapes.py): 300 users, 120 items with tens of
    # users each; h = 100 cost 10 % NDCG here, auto resolves to under 1
    data = make_synthetic(n_users=300, n_items=120, per_user=25, seed=4)
    scores = {}
    for shrinkage in (0.0, "auto", 100.0):
        model = ItemKNNRecommender({"shrinkage": shrinkage})
        model.fit(data.train)
        scores[shrinkage] = _ndcg(model, data)
    assert scores["auto"] >= 0.99 * scores[0.0]
    assert scores["auto"] >= 1.05 * scores[100.0]


def _as_written_before(path, params: dict) -> None:
    """Rewrite a saved item_knn file as the version before the fitted h was kept wrote it:
    no ``shrinkage`` array, the header's params as given."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files if name != "shrinkage"}
    header = json.loads(arrays["__header__"].tobytes())
    header["params"] = params
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # shrinkage 100, the default between the parameter's introduction and auto
        ({"k": 200, "weighting": "cosine", "shrinkage": 100.0, "binary": True}, 100.0),
        # before the parameter: plain cosine (the missing key now reads as auto)
        ({"k": 200, "weighting": "cosine", "binary": True}, 0.0),
        ({"k": 200, "weighting": "bm25", "shrinkage": 100.0}, 0.0),
    ],
)
def test_a_file_written_before_the_fitted_shrinkage_was_kept_loads(tmp_path, params, expected):
    data = make_synthetic(n_users=60, n_items=40, per_user=8, seed=1)
    model = ItemKNNRecommender(params)
    model.fit(data.train)
    path = tmp_path / "old.npz"
    save_model(model, path)
    _as_written_before(path, params)
    loaded = load_model(path)
    assert isinstance(loaded, ItemKNNRecommender)
    assert loaded.fitted_shrinkage == expected
    users = np.arange(data.train.n_users)
    np.testing.assert_array_equal(loaded.score_items(users), model.score_items(users))
    # written again, the file now carries the h
    save_model(loaded, tmp_path / "new.npz")
    with np.load(tmp_path / "new.npz", allow_pickle=False) as archive:
        assert float(archive["shrinkage"]) == expected


def test_a_new_file_keeps_the_resolved_h_and_refuses_a_damaged_one(tmp_path):
    data = make_synthetic(n_users=60, n_items=40, per_user=8, seed=1)
    model = ItemKNNRecommender()
    model.fit(data.train)
    path = tmp_path / "m.npz"
    digest = save_model(model, path)
    loaded = load_model(path, expected_sha256=digest)
    assert isinstance(loaded, ItemKNNRecommender)
    assert loaded.params.shrinkage == "auto"
    assert loaded.fitted_shrinkage == model.fitted_shrinkage > 0
    arrays = {**model.to_arrays(), "shrinkage": np.asarray(np.nan)}
    with pytest.raises(ValueError, match="'shrinkage'"):
        ItemKNNRecommender.from_arrays(model.params, model.n_users, model.n_items, arrays)
    damaged = ItemKNNRecommender.from_arrays(
        model.params, model.n_users, model.n_items, model.to_arrays()
    )
    damaged._state = {**damaged._state, "shrinkage": np.asarray(-1.0)}
    save_model(damaged, tmp_path / "damaged.npz")
    with pytest.raises(SchemaError, match="'shrinkage'"):
        load_model(tmp_path / "damaged.npz")


def test_shrinkage_takes_auto_or_a_number_and_a_search_may_range_over_numbers():
    assert ItemKNNParams().shrinkage == "auto"
    assert ItemKNNParams(shrinkage=100).shrinkage == 100.0
    for wrong in (-1, "big"):
        with pytest.raises(ValueError, match="shrinkage"):
            ItemKNNParams.model_validate({"shrinkage": wrong})
    check_search_space(
        ITEM_KNN, {}, {"shrinkage": FloatRange(type="float", low=1.0, high=1000.0, log=True)}
    )
    with pytest.raises(ValueError, match="not a number"):
        check_search_space(ITEM_KNN, {}, {"weighting": FloatRange(type="float", low=1.0, high=2.0)})
