"""ALS's sweeps run blocks of rows on the task's threads: the factors must be the serial
sweep's, bit for bit, and a fit must not depend on how many threads it was given."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from recomart_pipeline.ml import als
from recomart_pipeline.ml.base import Ratings, TrainingData
from recomart_pipeline.ml.models import create_model

pytestmark = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least two numba threads"
)


def _counts(n_users: int, n_items: int, seed: int) -> sp.csr_matrix:
    """Long-tailed counts over more rows than one block holds, with empty rows."""
    rng = np.random.default_rng(seed)
    matrix = sp.random(n_users, n_items, density=0.02, format="csr", random_state=seed)
    matrix.data = np.ceil(rng.pareto(1.5, matrix.nnz) + 1).astype(np.float32)
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix = sp.csr_matrix(matrix.multiply((np.arange(n_users) % 7 != 0)[:, None]))
    # ^ every seventh user has nothing
    matrix.sort_indices()
    return matrix


def _threads(n: int) -> int:
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    return previous


def test_a_threaded_sweep_equals_one_serial_sweep_bit_for_bit():
    n_users = 3 * als._ROWS_PER_TASK + 17  # three full blocks and a short one
    rows = _counts(n_users, 300, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n_users, 8)).astype(np.float32)
    y = rng.standard_normal((300, 8)).astype(np.float32)
    extra = (rows.data * 3.0).astype(np.float32)
    gram = als._gram(y, 0.1)
    serial = x.copy()
    als._cg_sweep(rows.indptr, rows.indices, extra, serial, y, gram, 3, 0, n_users, False)
    previous = _threads(2)
    try:
        threaded = x.copy()
        als._sweep(rows, extra, threaded, y, gram, 3)
    finally:
        numba.set_num_threads(previous)
    assert not np.array_equal(threaded, x)  # the sweep did update every block
    np.testing.assert_array_equal(threaded, serial)


def test_a_fit_is_the_same_on_one_thread_and_on_two():
    counts = _counts(2 * als._ROWS_PER_TASK + 300, 500, seed=3)
    empty = Ratings(np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32))
    train = TrainingData(counts.shape[0], counts.shape[1], empty, counts)
    fits = []
    for threads in (1, 2):
        previous = _threads(threads)
        try:
            model = create_model("als", {"n_factors": 8, "n_iterations": 3, "seed": 4})
            report = model.fit(train)
        finally:
            numba.set_num_threads(previous)
        state = model.to_arrays()
        losses = [record["train_loss"] for record in report.history]
        fits.append((state["user_factors"], state["item_factors"], losses))
    (x1, y1, loss1), (x2, y2, loss2) = fits
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert loss1 == loss2 and loss1[-1] < loss1[0]
