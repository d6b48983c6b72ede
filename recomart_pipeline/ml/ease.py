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

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

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

# Rows mirrored per step when the inverse's upper triangle is copied to the lower one: a
# block bounds the temporary copy (block x n floats) instead of a second n x n matrix.
_MIRROR_BLOCK = 1024


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


def _symmetric_inverse(gram: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix, in place (Cholesky)."""
    factor, info = lapack.dpotrf(gram, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise DataValidationError(
            f"EASE could not factorise its item x item system (LAPACK dpotrf info={info})",
            hint="raise the ease regularization (lambda)",
        )
    inverse, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise DataValidationError(
            f"EASE could not invert its item x item system (LAPACK dpotri info={info})",
            hint="raise the ease regularization (lambda)",
        )
    n = inverse.shape[0]
    # dpotri leaves only the upper triangle; mirror it, a block of columns at a time.
    for start in range(0, n, _MIRROR_BLOCK):
        stop = min(n, start + _MIRROR_BLOCK)
        block = inverse[start:stop, start:stop]
        block[:] = np.triu(block) + np.triu(block, 1).T
        inverse[stop:, start:stop] = inverse[start:stop, stop:].T
    result: np.ndarray = inverse
    return result


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
            gigabytes = 12 * train.n_items**2 / 1e9
            return (
                f"the catalogue has {train.n_items:,} items, more than ease.max_items "
                f"({params.max_items:,}): EASE's item x item matrix would need about "
                f"{gigabytes:.1f} GB and a cubic-time solve (item_knn scales to this size)"
            )
        return super().skip_reason(train)

    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        params: EASEParams = self.params  # type: ignore[assignment]
        rows = user_rows(train, params.binary)
        x64 = rows.astype(np.float64)
        gram = np.asarray((x64.T @ x64).toarray(), dtype=np.float64, order="F")
        gram[np.diag_indices_from(gram)] += params.regularization
        inverse = _symmetric_inverse(gram)
        diagonal = inverse.diagonal().copy()
        weights = np.empty(inverse.shape, dtype=np.float32)
        for start in range(0, inverse.shape[0], _MIRROR_BLOCK):
            stop = start + _MIRROR_BLOCK
            weights[start:stop] = inverse[start:stop] / -diagonal[None, :]
        del inverse, gram
        np.fill_diagonal(weights, 0.0)
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
