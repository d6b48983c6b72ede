"""Item-based k-nearest neighbours with cosine, BM25 or TF-IDF weighting (as ``implicit``'s
``CosineRecommender`` / ``BM25Recommender`` / ``TFIDFRecommender``).

The item x user matrix is weighted (``weighting``), each item's dot products with the items
it shares a user with are accumulated one item at a time (on every allowed core), and only
its ``k`` largest are kept: the similarity ``W`` is a sparse ``n_items x n_items`` matrix with at most ``k``
entries a row, so memory grows with ``n_items · k``, not with the square of the catalogue.
A user's score for item ``j`` is ``Σ_i x_ui W_ij`` over the user's items ``i``.

Cosine similarity is shrunk towards zero for items seen by few users (``shrinkage`` h:
``x_i·x_j / (‖x_i‖‖x_j‖ + h)``, the ``shrink`` term of Dacrema et al.'s baselines, "Are we
really making much progress?", RecSys 2019). Without it two tail items that share their
one user are perfectly similar, and in a large long-tailed catalogue such one-user
coincidences crowd the evidence of well-observed pairs out of the top k.

How strong that pull should be depends on the data: a fixed h of 100 gains 2-4 % on a
25,000-item Zipf shop at 5M events and loses 10 % on MovieLens-shaped data whose items all
have tens of users (BENCHMARKS.md). ``shrinkage: auto`` (the default) therefore sets
``h = 0.1 / density = 0.1 · users · items / interactions`` of the training matrix. Why the
density: two items of average support n̄ are brought together by chance about
``λ = n̄² / users`` times, and at ``h = 0.1 · users / n̄`` such a pair keeps ``λ / (λ + 0.1)``
of its cosine. Where λ is large (dense data: co-occurrence counts are big and cosines
reliable) almost nothing is shrunk; where λ is far below one (sparse catalogues: a
similarity rests on one or two shared users) the pull is strong. Measured on the benchmark's
five data sets (100k to 5M events, shops and latent-factor worlds), the rule is within 1 % of
the better of h = 0 and h = 100 on every one, test and validation alike (0.2 did about as
well, a little better at 5M and worse on the dense sets; 0.05 lost 1.6 % on the 100k shop's
validation split): docs/models.md, BENCHMARKS.md.

It fits in one pass with no seed, explains itself ("because you bought i"), and on sparse
shop data it is often as good as or better than matrix factorisation; EASE, its dense
closed-form cousin, is usually better when the catalogue is small enough for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel

from recomart_pipeline.ml._blocks import run_blocks
from recomart_pipeline.ml._csr_state import check_csr, csr_arrays, csr_from_state, csr_shapes
from recomart_pipeline.ml._jit import kernel
from recomart_pipeline.ml._topk import rank_candidates
from recomart_pipeline.ml.base import (
    EpochCallback,
    FitReport,
    History,
    Recommender,
    SparseProduct,
    StateShape,
    TrainingData,
)
from recomart_pipeline.ml.ease import history_rows, user_rows
from recomart_pipeline.ml.params import ItemKNNParams

# Items per task handed to a worker thread: small enough that the uneven cost of items (a
# popular item's row touches many users) evens out across threads, large enough that the
# per-task overhead (a few n_items scratch rows) stays negligible.
_ITEMS_PER_TASK = 256
# Users per ranking chunk (``default_chunk_size``): 975k users at 20M events make 477 chunks;
# ranking them to depth 100 took 16.7 s against 18.6 s with the dense models' 64 (median of 4).
SPARSE_CHUNK_USERS = 2048
# ``shrinkage: auto``'s h per unit of the training matrix's inverse density (module docstring).
AUTO_SHRINKAGE_SCALE = 0.1


def item_norms(rows: sp.csr_matrix) -> np.ndarray:
    """Each item's L2 norm over its users (the cosine's denominators; float64)."""
    items = sp.csr_matrix(rows.T, dtype=np.float64)
    norms: np.ndarray = np.sqrt(np.asarray(items.multiply(items).sum(axis=1)).ravel())
    return norms


def auto_shrinkage(rows: sp.csr_matrix) -> float:
    """``shrinkage: auto``'s h for a user x item matrix: ``AUTO_SHRINKAGE_SCALE`` · users ·
    items / interactions, counting only users and items with a (non-zero) interaction, so a
    catalogue's never-bought items or a user table's inactive users do not change the pull
    the interactions need; 0 for an empty matrix. It counts interactions, not their values:
    with ``binary: false`` the norms it is added to are those of the confidences (larger
    than √n_i), so the same h pulls less there, as a fixed number does."""
    matrix = sp.csr_matrix(rows)
    stored = matrix.data != 0
    interactions = int(np.count_nonzero(stored))
    if interactions == 0:
        return 0.0
    per_row = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[stored]
    users = int(np.count_nonzero(np.bincount(per_row, minlength=matrix.shape[0])))
    items = int(np.count_nonzero(np.bincount(matrix.indices[stored], minlength=matrix.shape[1])))
    return AUTO_SHRINKAGE_SCALE * users * items / interactions


def resolved_shrinkage(rows: sp.csr_matrix, params: ItemKNNParams) -> float:
    """The h a fit on ``rows`` uses: 0 unless ``weighting`` is cosine (BM25 and TF-IDF are
    not shrunk), the configured number, or ``auto``'s rule on ``rows``."""
    if params.weighting != "cosine":
        return 0.0
    if params.shrinkage == "auto":
        return auto_shrinkage(rows)
    return float(params.shrinkage)


def weighted_items(rows: sp.csr_matrix, params: ItemKNNParams) -> sp.csr_matrix:
    """The item x user matrix the similarities are dot products of (float64 CSR)."""
    items = sp.csr_matrix(rows.T, dtype=np.float64)
    n_items = items.shape[0]
    if params.weighting == "cosine":
        norms = item_norms(rows)
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


@kernel
def _top_k_similarity_rows(
    item_indptr: np.ndarray,
    item_users: np.ndarray,
    item_weights: np.ndarray,
    user_indptr: np.ndarray,
    user_items: np.ndarray,
    user_weights: np.ndarray,
    start: int,
    stop: int,
    neighbours: np.ndarray,
    values: np.ndarray,
    norms: np.ndarray,
    shrinkage: float,
) -> None:
    """Rows ``start:stop`` of ``W Wᵀ`` (W: the weighted item x user matrix, given as CSR both
    ways), each cut to its ``k`` largest positive entries at once (``k``: the outputs' width).
    With ``shrinkage`` h > 0 an entry ``s_ij`` (a cosine of unit rows) becomes
    ``s_ij / (1 + h / (n_i n_j))`` (``norms``: the rows' norms before normalisation), i.e.
    ``w_i·w_j / (n_i n_j + h)``, before the top k are chosen; with h = 0 it is kept as is.

    One item's dot products are accumulated by walking its users and their items
    (Gustavson's row-by-row sparse product, as scipy's: the same additions in the same order,
    in float64), noting which items were reached; only those are ranked, in the order they
    were reached, by the ranking kernels' selection (a row's entries are put in item order
    once, by ``top_k_similarities``: sorting every item's reached list, with the branch on
    first visits, was a third of the kernel's time at 20M). The full product is never stored
    (building it as a scipy matrix, its dense copy and a heap over every entry were the old
    fit's cost), and an item's cost is the number of items it shares a user with, not the
    catalogue's size.
    """
    n_items = neighbours.shape[0]
    k = neighbours.shape[1]
    sums = np.zeros(n_items, np.float64)
    reached = np.zeros(n_items, np.bool_)
    touched = np.empty(n_items + 1, np.int32)
    row = np.empty(n_items, np.float32)
    ids = np.empty(n_items, np.int32)
    keys = np.empty(n_items, np.uint64)
    for item in range(start, stop):
        size = 0
        for p in range(item_indptr[item], item_indptr[item + 1]):
            user = item_users[p]
            weight = item_weights[p]
            for q in range(user_indptr[user], user_indptr[user + 1]):
                other = user_items[q]
                # a first visit appends the item without a branch (which visits are first is
                # data-dependent: mispredicting it was a fifth of the accumulation)
                touched[size] = other
                size += not reached[other]
                reached[other] = True
                sums[other] += weight * user_weights[q]
        count = 0
        for position in range(size):  # in first-reached order: the caller sorts each row
            other = touched[position]
            value = sums[other]
            sums[other] = 0.0
            reached[other] = False
            if shrinkage > 0.0:
                value = value / (1.0 + shrinkage / (norms[item] * norms[other]))
            if other != item and value > 0.0:  # not its own neighbour; positive only
                row[count] = value
                ids[count] = other
                count += 1
        if count <= k:  # every positive similarity is kept
            neighbours[item, :count] = ids[:count]
            values[item, :count] = row[:count]
            continue
        # value descending, then item ascending: the ranking kernels' order
        rank_candidates(row, ids, count, keys, neighbours[item], values[item])


def top_k_similarities(
    weighted: sp.csr_matrix,
    k: int,
    norms: np.ndarray | None = None,
    shrinkage: float = 0.0,
) -> sp.csr_matrix:
    """Each item's ``k`` most similar other items (positive similarities only), as CSR;
    ``shrinkage`` > 0 shrinks each similarity by the items' ``norms`` (the kernel's rule).

    Ties go to the lower item index, so the result is deterministic. Items are split into
    tasks run on up to ``numba.get_num_threads()`` threads (the runtime's CPU
    cap; the kernel releases the GIL); each row is computed by one thread alone, so the
    result does not depend on the number of threads."""
    n_items = weighted.shape[0]
    k = min(k, max(n_items - 1, 1))
    weighted = sp.csr_matrix(weighted, dtype=np.float64)
    weighted.sort_indices()
    by_user = sp.csr_matrix(weighted.T)
    by_user.sort_indices()
    neighbours = np.full((n_items, k), -1, dtype=np.int32)
    values = np.full((n_items, k), np.nan, dtype=np.float32)
    if shrinkage > 0.0 and norms is None:
        raise ValueError("shrinkage needs the items' norms")
    norms = np.ones(n_items) if norms is None else np.asarray(norms, dtype=np.float64)

    def run(start: int) -> None:
        _top_k_similarity_rows(
            weighted.indptr,
            weighted.indices,
            weighted.data,
            by_user.indptr,
            by_user.indices,
            by_user.data,
            start,
            min(n_items, start + _ITEMS_PER_TASK),
            neighbours,
            values,
            norms,
            float(shrinkage),
        )

    run_blocks(run, range(0, n_items, _ITEMS_PER_TASK), name="item-knn")
    keep = (neighbours >= 0) & (values > 0)
    counts = keep.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
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
        # the h the fit used: with shrinkage auto the config does not say, the data did
        "shrinkage": "scalar",
    }

    @property
    def fitted_shrinkage(self) -> float:
        """The cosine shrinkage h the similarities were computed with (``auto`` resolved)."""
        self._require_fitted()
        return float(self._state["shrinkage"])

    @classmethod
    def from_arrays(
        cls,
        params: BaseModel | Mapping[str, Any] | None,
        n_users: int,
        n_items: int,
        arrays: Mapping[str, np.ndarray],
    ) -> Self:
        """As ``Recommender.from_arrays``; a file written before the fitted h was stored
        (no ``shrinkage`` array) gets the h its parameters imply: their number, or 0 for a
        file older than the parameter (its default then reads as auto), whose cosine was
        plain, and for BM25 / TF-IDF."""
        if "shrinkage" not in arrays:
            known = ItemKNNParams.model_validate(
                params.model_dump() if isinstance(params, BaseModel) else dict(params or {})
            )
            shrunk = known.weighting == "cosine" and isinstance(known.shrinkage, float)
            number = float(known.shrinkage) if shrunk else 0.0
            arrays = {**arrays, "shrinkage": np.asarray(number, dtype=np.float64)}
        return super().from_arrays(params, n_users, n_items, arrays)

    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        params: ItemKNNParams = self.params  # type: ignore[assignment]
        rows = user_rows(train, params.binary)
        shrinkage = resolved_shrinkage(rows, params)
        similarity = top_k_similarities(
            weighted_items(rows, params), params.k, item_norms(rows), shrinkage
        )
        state = {
            **csr_arrays("similarity", similarity),
            **csr_arrays("user_items", rows),
            "shrinkage": np.asarray(shrinkage, dtype=np.float64),
        }
        return state, FitReport(0.0, n_train=int(rows.nnz))

    def _check_state(self, state: dict[str, np.ndarray], n_users: int, n_items: int) -> None:
        check_csr(state, "similarity", n_items)
        check_csr(state, "user_items", n_items)
        shrinkage = float(state["shrinkage"])
        if not (math.isfinite(shrinkage) and shrinkage >= 0):
            raise ValueError(f"state array 'shrinkage' must be a number >= 0, got {shrinkage}")

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
        scores = self._ranking_scores(users).to_csr().toarray()
        return np.ascontiguousarray(scores, dtype=np.float32)

    def default_chunk_size(self) -> int:
        """Users ranked together: ``SPARSE_CHUNK_USERS``. No dense scores are made (a chunk
        keeps one catalogue-long row of sums per thread, whatever its size), so the chunk
        need not be small; a large one spreads each chunk's Python work (slicing the users'
        rows, handing the chunk to a thread), which holds the GIL, over more users."""
        return SPARSE_CHUNK_USERS

    def _ranking_scores(self, users: np.ndarray) -> SparseProduct:
        """Sparse: a user scores only the neighbours of their items (about a thousand of
        25,000 items at 5M); ranked from the product's factors, no dense row per user and
        no product built (``top_k_product_rows``)."""
        rows, similarity = self._matrices()
        return SparseProduct(rows[users], similarity)

    def _score_history(self, history: History, rows: np.ndarray) -> np.ndarray:
        """``Σ_i x_hi W_ij`` over the history's items: item-based, nothing to fold in."""
        params: ItemKNNParams = self.params  # type: ignore[assignment]
        similarity = csr_from_state(self._state, "similarity", (self.n_items, self.n_items))
        scores = (history_rows(history, rows, params.binary) @ similarity).toarray()
        return np.ascontiguousarray(scores, dtype=np.float32)
