"""Item-based k-nearest neighbours with cosine, BM25 or TF-IDF weighting (as ``implicit``'s
``CosineRecommender`` / ``BM25Recommender`` / ``TFIDFRecommender``).

The item x user matrix is weighted (``weighting``), every item's dot products with every
other item are computed a block of items at a time, and only each item's ``k`` largest are
kept: the similarity ``W`` is a sparse ``n_items x n_items`` matrix with at most ``k``
entries a row, so memory grows with ``n_items · k``, not with the square of the catalogue.
A user's score for item ``j`` is ``Σ_i x_ui W_ij`` over the user's items ``i``.

It fits in one pass with no seed, explains itself ("because you bought i"), and on sparse
shop data it is often as good as or better than matrix factorisation; EASE, its dense
closed-form cousin, is usually better when the catalogue is small enough for it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from recomart_pipeline.ml._csr_state import check_csr, csr_arrays, csr_from_state, csr_shapes
from recomart_pipeline.ml._topk import top_k_rows
from recomart_pipeline.ml.base import (
    EpochCallback,
    FitReport,
    History,
    Recommender,
    StateShape,
    TrainingData,
)
from recomart_pipeline.ml.ease import history_rows, user_rows
from recomart_pipeline.ml.params import ItemKNNParams

# Items whose similarity rows are computed together: their dense block (block x n_items
# float32) stays within this many bytes.
_BLOCK_BYTES = 64 * 1024 * 1024


def weighted_items(rows: sp.csr_matrix, params: ItemKNNParams) -> sp.csr_matrix:
    """The item x user matrix the similarities are dot products of (float64 CSR)."""
    items = sp.csr_matrix(rows.T, dtype=np.float64)
    n_items = items.shape[0]
    if params.weighting == "cosine":
        norms = np.sqrt(np.asarray(items.multiply(items).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return sp.csr_matrix(sp.diags(scale) @ items)
    coo = items.tocoo()
    # idf of a user: rarely-active users say more about the items they share
    idf = np.log(max(n_items, 1)) - np.log1p(np.bincount(coo.col, minlength=items.shape[1]))
    if params.weighting == "tfidf":
        data = np.sqrt(coo.data) * idf[coo.col]
    else:  # bm25: saturate repeated interactions and normalise by the item's total
        lengths = np.asarray(items.sum(axis=1)).ravel()
        average = lengths.mean() if lengths.size and lengths.mean() > 0 else 1.0
        norm = (1.0 - params.bm25_b) + params.bm25_b * lengths / average
        k1 = params.bm25_k1
        data = coo.data * (k1 + 1.0) / (k1 * norm[coo.row] + coo.data) * idf[coo.col]
    weighted = sp.csr_matrix((data, (coo.row, coo.col)), shape=items.shape)
    weighted.sort_indices()
    return weighted


def top_k_similarities(weighted: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each item's ``k`` most similar other items (positive similarities only), as CSR.

    Ties go to the lower item index (``top_k_rows``), so the result is deterministic."""
    n_items = weighted.shape[0]
    k = min(k, max(n_items - 1, 1))
    by_user = sp.csr_matrix(weighted.T)
    block = max(1, min(n_items, _BLOCK_BYTES // max(1, 4 * n_items)))
    neighbours = np.full((n_items, k), -1, dtype=np.int32)
    values = np.full((n_items, k), np.nan, dtype=np.float32)
    for start in range(0, n_items, block):
        stop = min(n_items, start + block)
        scores = np.ascontiguousarray((weighted[start:stop] @ by_user).toarray(), np.float32)
        rows = np.arange(stop - start, dtype=np.int32)
        self_offsets = np.arange(stop - start + 1, dtype=np.int32)
        self_items = np.arange(start, stop, dtype=np.int32)  # an item is not its own neighbour
        top_k_rows(
            scores,
            rows,
            self_offsets,
            self_items,
            np.ones(stop - start, np.bool_),
            k,
            neighbours[start:stop],
            values[start:stop],
        )
    keep = (neighbours >= 0) & (values > 0)
    counts = keep.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    # row-major boolean indexing keeps each row's neighbours best first; CSR sorts them
    matrix = sp.csr_matrix((values[keep], neighbours[keep], indptr), shape=(n_items, n_items))
    matrix.sort_indices()
    return matrix


class ItemKNNRecommender(Recommender):
    """Sparse top-k item-item similarities for ranking (scores are not ratings)."""

    model_type = "item_knn"
    short_name = "item_knn"
    Params = ItemKNNParams
    predicts_ratings = False
    state_shapes: ClassVar[dict[str, StateShape]] = {
        **csr_shapes("similarity", "item_offsets"),
        **csr_shapes("user_items", "user_offsets"),
    }

    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        params: ItemKNNParams = self.params  # type: ignore[assignment]
        rows = user_rows(train, params.binary)
        similarity = top_k_similarities(weighted_items(rows, params), params.k)
        state = {**csr_arrays("similarity", similarity), **csr_arrays("user_items", rows)}
        return state, FitReport(0.0, n_train=int(rows.nnz))

    def _check_state(self, state: dict[str, np.ndarray], n_users: int, n_items: int) -> None:
        check_csr(state, "similarity", n_items)
        check_csr(state, "user_items", n_items)

    def _matrices(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        shape_u, shape_i = (self.n_users, self.n_items), (self.n_items, self.n_items)
        return (
            csr_from_state(self._state, "user_items", shape_u),
            csr_from_state(self._state, "similarity", shape_i),
        )

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        rows, similarity = self._matrices()
        by_target = sp.csr_matrix(similarity.T)[items]  # row n: similarities into items[n]
        scores = np.asarray(rows[users].multiply(by_target).sum(axis=1)).ravel()
        return scores.astype(np.float32)

    def _score_items(self, users: np.ndarray) -> np.ndarray:
        rows, similarity = self._matrices()
        scores = (rows[users] @ similarity).toarray()
        return np.ascontiguousarray(scores, dtype=np.float32)

    def _score_history(self, history: History, rows: np.ndarray) -> np.ndarray:
        """``Σ_i x_hi W_ij`` over the history's items: item-based, nothing to fold in."""
        params: ItemKNNParams = self.params  # type: ignore[assignment]
        similarity = csr_from_state(self._state, "similarity", (self.n_items, self.n_items))
        scores = (history_rows(history, rows, params.binary) @ similarity).toarray()
        return np.ascontiguousarray(scores, dtype=np.float32)
