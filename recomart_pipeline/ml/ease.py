"""EASE: a closed-form item-item model (Steck 2019, "Embarrassingly Shallow Autoencoders").

It learns a dense item x item weight matrix ``B`` that reconstructs each user's interaction
row from the user's other items, ``min ‖X - XB‖² + λ‖B‖²`` with ``diag(B) = 0``, whose
solution is closed-form: ``P = (XᵀX + λI)⁻¹``, ``B_ij = -P_ij / P_jj``, ``B_jj = 0``. A
user's scores are ``x_u B``. There are no epochs, no seed and one hyper-parameter.

On top-N ranking from implicit feedback it routinely beats matrix factorisation (Steck's
results on MovieLens-20M, Netflix and MSD; and the generator's shops, see BENCHMARKS.md),
because it keeps every item-item relation instead of squeezing them into a few factors. The
price is the catalogue: ``B`` has ``n_items²`` entries and the fit inverts an
``n_items x n_items`` matrix (cubic time), so above ``max_items`` the candidate is skipped
with its reason, and item-kNN (sparse) is the item-based model for large catalogues.

The state is ``B`` plus the training interactions (the rows users are scored from), stored
as CSR arrays; ``predict`` returns the ranking score, not a rating. A user the model never
saw is scored the same way from a history row (``x_h B``): nothing is refitted.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.ml._csr_state import check_csr, csr_arrays, csr_from_state, csr_shapes
from recomart_pipeline.ml.base import (
    EpochCallback,
    FitReport,
    History,
    Recommender,
    StateShape,
    TrainingData,
)
from recomart_pipeline.ml.params import EASEParams

# Rows per step wherever the fit walks its n x n matrix (the Gram product, the mirror of
# the inverse, the weights): a block bounds each temporary to block x n floats instead of a
# second n x n matrix (51 MB in float64 at 25,000 items).
_BLOCK = 256
# The precision EASE's item x item system is solved in. float64 only to measure float32
# against it (benchmarks/ease_precision.py); the fit also takes float64 when float32 would
# not be accurate enough (_FLOAT32_CONDITION).
SOLVE_DTYPE: type[np.floating] = np.float32
# float32 keeps about 7 digits, and a Cholesky solve loses about log10(condition number) of
# them; ‖XᵀX‖∞ / λ + 1 bounds the condition number of XᵀX + λI. Up to 1e5 at least two
# digits survive in the worst case (in practice the errors are far smaller: BENCHMARKS.md),
# enough to rank by; above it (λ tiny against the co-occurrence counts) float64 is used.
_FLOAT32_CONDITION = 1e5
# OpenBLAS's threaded Cholesky (scipy's wheels, OpenBLAS 0.3.31) kills the process with a
# segmentation fault once a column of the matrix passes about 125 kB: measured here in
# float64 from 16,000 items (not at 15,000) and in float32 at 32,000 (not at 25,000), and
# not on one thread; a known class of OpenBLAS bugs (OpenMathLib/OpenBLAS#1413, #2821). Above
# this many bytes per column the solve runs on one BLAS thread (one core instead of all).
_THREADED_SOLVE_MAX_COLUMN_BYTES = 100_000


def user_rows(train: TrainingData, binary: bool) -> sp.csr_matrix:
    """The interactions users are scored from: binary, or the summed confidences."""
    return _as_rows(train.interactions(), binary)


def history_rows(history: History, rows: np.ndarray, binary: bool) -> sp.csr_matrix:
    """``user_rows`` for users of a history: the same transformation of their interactions,
    so a user scored from a history is scored exactly as if the model had stored the row."""
    return _as_rows(history.rows(rows), binary)


def _as_rows(interactions: sp.csr_matrix, binary: bool) -> sp.csr_matrix:
    matrix = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
    matrix.eliminate_zeros()
    if binary:
        matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix


def gram_matrix(rows: sp.csr_matrix, dtype: type[np.floating]) -> np.ndarray:
    """``XᵀX`` as a dense C-ordered ``dtype`` matrix, built a block of item rows at a time.

    Each block's sparse product is summed in float64 and rounded to ``dtype`` once (binary
    co-occurrence counts are exact in float32 up to 2^24), and the only temporaries are one
    block's sparse product and its dense copy: never a second n x n matrix, which at 25,000
    items would cost 2.5 GB in float32 (5 GB in float64).
    """
    x64 = sp.csr_matrix(rows, dtype=np.float64)
    by_item = x64.T.tocsr()
    n = rows.shape[1]
    gram = np.empty((n, n), dtype=dtype)
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        gram[start:stop] = (by_item[start:stop] @ x64).toarray()
    return gram


def _condition_bound(gram: np.ndarray, regularization: float) -> float:
    """An upper bound of the condition number of ``gram + λI`` (gram: XᵀX, nonnegative
    entries): its largest eigenvalue is at most the largest row sum plus λ, its smallest at
    least λ."""
    largest = max(
        (
            float(gram[start : start + _BLOCK].sum(axis=1, dtype=np.float64).max())
            for start in range(0, gram.shape[0], _BLOCK)
        ),
        default=0.0,
    )
    return largest / regularization + 1.0


def _symmetric_inverse(gram: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite C-ordered matrix, in place (Cholesky in
    the matrix's own precision: LAPACK s/dpotrf + s/dpotri). The matrix is symmetric, so its
    C-ordered memory is also its Fortran-ordered transpose, which LAPACK overwrites without
    a copy; the result is returned C-ordered, in the same memory."""
    single = gram.dtype == np.float32
    potrf, potri = (lapack.spotrf, lapack.spotri) if single else (lapack.dpotrf, lapack.dpotri)
    prefix = "s" if single else "d"
    n = gram.shape[0]
    threads: AbstractContextManager[Any] = nullcontext()
    if n * gram.itemsize > _THREADED_SOLVE_MAX_COLUMN_BYTES:
        threads = threadpool_limits(limits=1, user_api="blas")
    with threads:
        factor, info = potrf(gram.T, lower=False, overwrite_a=True, clean=False)
        if info == 0:
            inverse, info_inverse = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise DataValidationError(
            f"EASE could not factorise its item x item system (LAPACK {prefix}potrf info={info})",
            hint="raise the ease regularization (lambda)",
        )
    info = info_inverse
    if info != 0:
        raise DataValidationError(
            f"EASE could not invert its item x item system (LAPACK {prefix}potri info={info})",
            hint="raise the ease regularization (lambda)",
        )
    # potri leaves only the upper triangle; mirror it, a block of columns at a time.
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        block = inverse[start:stop, start:stop]
        block[:] = np.triu(block) + np.triu(block, 1).T
        inverse[stop:, start:stop] = inverse[start:stop, stop:].T
    result: np.ndarray = inverse.T
    return result


def ease_weights(
    rows: sp.csr_matrix, regularization: float, dtype: type[np.floating] = np.float32
) -> np.ndarray:
    """EASE's float32 item x item weights ``B = -P / diag(P)``, ``diag(B) = 0``, with
    ``P = (XᵀX + λI)⁻¹`` solved in ``dtype``.

    float32 (the default) halves the memory and about halves the time of the solve against
    float64, for weights that rank the same (BENCHMARKS.md: "EASE in float32"); the
    precision that matters is kept: the Gram entries are summed in float64 and rounded
    once, and ``diag(P)``, every weight's divisor, is taken to float64 before the division.
    The weights are computed in the inverse's own memory, so the peak is one n x n matrix
    of ``dtype`` (4·n² bytes in float32) plus a block.
    """
    gram = gram_matrix(rows, dtype)
    if dtype == np.float32 and _condition_bound(gram, regularization) > _FLOAT32_CONDITION:
        del gram
        return ease_weights(rows, regularization, np.float64)
    gram[np.diag_indices_from(gram)] += dtype(regularization)
    inverse = _symmetric_inverse(gram)
    del gram
    diagonal = inverse.diagonal().astype(np.float64)
    weights = inverse if inverse.dtype == np.float32 else np.empty(inverse.shape, np.float32)
    for start in range(0, inverse.shape[0], _BLOCK):
        stop = start + _BLOCK
        weights[start:stop] = inverse[start:stop] / -diagonal[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


class EASERecommender(Recommender):
    """Closed-form item-item weights for ranking (scores are not ratings)."""

    model_type = "ease"
    short_name = "ease"
    Params = EASEParams
    predicts_ratings = False
    state_shapes: ClassVar[dict[str, StateShape]] = {
        "item_weights": "items",
        **csr_shapes("user_items", "user_offsets"),
    }

    def skip_reason(self, train: TrainingData) -> str | None:
        params: EASEParams = self.params  # type: ignore[assignment]
        if train.n_items > params.max_items:
            gigabytes = 4 * train.n_items**2 / 1e9
            return (
                f"the catalogue has {train.n_items:,} items, more than ease.max_items "
                f"({params.max_items:,}): EASE's item x item weights alone would take "
                f"{gigabytes:.1f} GB and the solve is cubic in the items (item_knn scales "
                "to this size)"
            )
        return super().skip_reason(train)

    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        params: EASEParams = self.params  # type: ignore[assignment]
        rows = user_rows(train, params.binary)
        weights = ease_weights(rows, params.regularization, SOLVE_DTYPE)
        report = FitReport(0.0, n_train=int(rows.nnz))
        return {"item_weights": weights, **csr_arrays("user_items", rows)}, report

    def _check_state(self, state: dict[str, np.ndarray], n_users: int, n_items: int) -> None:
        weights = state["item_weights"]
        if weights.shape != (n_items, n_items):
            raise ValueError(
                f"state array 'item_weights' has shape {weights.shape}, expected "
                f"({n_items}, {n_items})"
            )
        check_csr(state, "user_items", n_items)

    def _rows(self, users: np.ndarray) -> sp.csr_matrix:
        matrix = csr_from_state(self._state, "user_items", (self.n_users, self.n_items))
        selected: sp.csr_matrix = matrix[users]
        return selected

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        weights = self._state["item_weights"]
        rows = self._rows(users)
        # Σ_j x_uj B_ji for each (u, i) pair, without a dense users x items matrix.
        scores = np.asarray(rows.multiply(weights[:, items].T).sum(axis=1)).ravel()
        return scores.astype(np.float32)

    def _score_items(self, users: np.ndarray) -> np.ndarray:
        scores = self._rows(users) @ self._state["item_weights"]
        return np.ascontiguousarray(scores, dtype=np.float32)

    def _score_history(self, history: History, rows: np.ndarray) -> np.ndarray:
        """``x B`` for the history's rows: EASE is item-based and needs nothing else."""
        params: EASEParams = self.params  # type: ignore[assignment]
        scores = history_rows(history, rows, params.binary) @ self._state["item_weights"]
        return np.ascontiguousarray(scores, dtype=np.float32)
