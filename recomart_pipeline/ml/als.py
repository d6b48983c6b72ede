"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008), solved with a few conjugate-gradient steps.

Every stored interaction ``m_ui > 0`` is a preference ``p_ui = 1`` with confidence
``c_ui = 1 + alpha·m_ui``; every other cell is ``p_ui = 0`` with confidence 1. Options
(``confidence_matrix``): ``confidence: log`` uses ``1 + alpha·log(1 + m/epsilon)`` (long-tailed
counts), ``weighting: bm25`` reweights ``m`` with BM25 first (popular items and heavy users). ALS alternates
exact-in-the-limit least-squares updates of the user and item factors,
``x_u = (YᵀY + Yᵀ(C_u - I)Y + λI)⁻¹ Yᵀ C_u p_u``, warm-started and approximated by
``cg_steps`` conjugate-gradient iterations per row (Takács et al. 2011, as in ``implicit``),
which costs O(nnz·k) per sweep instead of O(nnz·k²) for explicit solves.

The per-row CG loop walks a sparse row and cannot be batched in NumPy without nnz x k
temporaries, so it is a numba kernel. ``predict`` returns the preference score ``x_u·y_i``
(≈ 0..1), not a rating: RMSE/MAE are not meaningful for this model (``predicts_ratings``
is False and evaluation reports them as missing). A user the model never saw is scored by
folding in a factor from their history: the user step's closed form against the fitted
item factors (``fold_in``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.ml._blocks import run_blocks
from recomart_pipeline.ml._jit import kernel
from recomart_pipeline.ml.base import (
    EpochCallback,
    EpochRecord,
    FitReport,
    History,
    Recommender,
    StateShape,
    TrainingData,
)
from recomart_pipeline.ml.knn import weighted_items
from recomart_pipeline.ml.params import ALSParams, ItemKNNParams

# Rows per thread task in a sweep: small enough that a block of popular items (long rows)
# does not leave the other threads idle at the end, large enough that scheduling is noise.
_ROWS_PER_TASK = 1024


@kernel
def _cg_sweep(
    indptr: np.ndarray,
    indices: np.ndarray,
    extra_conf: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    gram: np.ndarray,
    steps: int,
    start: int,
    stop: int,
    with_loss: bool,
) -> float:
    """Update rows ``start:stop`` of ``x`` in place; ``gram`` is ``YᵀY + λI``, extra_conf is
    ``c - 1``. A row's update reads only its own row of ``x`` (and ``y``, fixed during the
    sweep), so blocks of rows run on separate threads give the serial sweep's result.

    With ``with_loss``, returns the rows' part of the loss over the stored cells once they
    are updated, Σ ``c(1 - s)² - s²`` with ``s = x_u·y_i``: the second sweep of an iteration
    leaves both sides final, so this is the iteration's loss, taken while the row's ``y_i``
    are still in cache from its CG steps, at about half the cost of another pass over every
    stored cell (which took ~15% of a fit at 20M interactions).

    Every float sum runs in a loop that only reads: with fastmath's reassociation, a sum in a
    loop that also stores gets a vectorised and a scalar version chosen at run time by where
    the arrays lie in memory, and the two round differently, so the same seed gave different
    factors from one process (or one fit) to the next."""
    k = x.shape[1]
    r = np.empty(k, np.float32)
    p = np.empty(k, np.float32)
    ap = np.empty(k, np.float32)
    total = 0.0
    for u in range(start, stop):
        xu = x[u]
        # residual r = b - A x with b = Σ c·y_i and A x = gram·x + Σ (c - 1)(y_i·x) y_i
        for a in range(k):
            acc = np.float32(0.0)
            for b in range(k):
                acc += gram[a, b] * xu[b]
            r[a] = -acc
        for nz in range(indptr[u], indptr[u + 1]):
            yi = y[indices[nz]]
            c1 = extra_conf[nz]
            dot = np.float32(0.0)
            for f in range(k):
                dot += yi[f] * xu[f]
            weight = np.float32(1.0) + c1 - c1 * dot
            for f in range(k):
                r[f] += weight * yi[f]
        rs_old = np.float32(0.0)
        for f in range(k):
            rs_old += r[f] * r[f]
        for f in range(k):
            p[f] = r[f]
        for _ in range(steps):
            if rs_old < 1e-20:
                break
            for a in range(k):
                acc = np.float32(0.0)
                for b in range(k):
                    acc += gram[a, b] * p[b]
                ap[a] = acc
            for nz in range(indptr[u], indptr[u + 1]):
                yi = y[indices[nz]]
                dot = np.float32(0.0)
                for f in range(k):
                    dot += yi[f] * p[f]
                weight = extra_conf[nz] * dot
                for f in range(k):
                    ap[f] += weight * yi[f]
            p_ap = np.float32(0.0)
            for f in range(k):
                p_ap += p[f] * ap[f]
            step = rs_old / p_ap
            for f in range(k):
                xu[f] += step * p[f]
                r[f] -= step * ap[f]
            rs_new = np.float32(0.0)
            for f in range(k):
                rs_new += r[f] * r[f]
            beta = rs_new / rs_old
            for f in range(k):
                p[f] = r[f] + beta * p[f]
            rs_old = rs_new
        if with_loss:
            for nz in range(indptr[u], indptr[u + 1]):
                yi = y[indices[nz]]
                s = np.float32(0.0)
                for f in range(k):
                    s += xu[f] * yi[f]
                c = 1.0 + extra_conf[nz]
                total += c * (1.0 - s) ** 2 - s * s
    return total


@kernel
def _fold_in_systems(
    indptr: np.ndarray,
    indices: np.ndarray,
    extra_conf: np.ndarray,
    y: np.ndarray,
    gram: np.ndarray,
    a_out: np.ndarray,
    b_out: np.ndarray,
) -> None:
    """Per history row, the user step's system ``A = YᵀY + λI + Σ (c - 1) y_i y_iᵀ`` and
    ``b = Σ c y_i`` over the row's items (``a_out``/``b_out`` are filled, float64).

    Each cell is accumulated in the order of the row's entries (no reduction is reordered),
    so the same history gives the same factors every time."""
    k = y.shape[1]
    for r in range(indptr.shape[0] - 1):
        a = a_out[r]
        b = b_out[r]
        for p in range(k):
            b[p] = 0.0
            for q in range(k):
                a[p, q] = gram[p, q]
        for nz in range(indptr[r], indptr[r + 1]):
            yi = y[indices[nz]]
            c1 = np.float64(extra_conf[nz])
            for p in range(k):
                b[p] += (1.0 + c1) * yi[p]
                weight = c1 * yi[p]
                for q in range(k):
                    a[p, q] += weight * yi[q]


def confidence_matrix(interactions: sp.csr_matrix, params: ALSParams) -> sp.csr_matrix:
    """The confidence ``c_ui`` of every stored cell (float32 CSR, sorted, same pattern).

    ``weighting: bm25`` first reweights the matrix as implicit's ``bm25_weight`` does (each
    item's users, ``bm25_k1`` / ``bm25_b``); then ``confidence: linear`` gives
    ``1 + alpha·m`` and ``log`` gives ``1 + alpha·log(1 + m/epsilon)``. The defaults (linear,
    no weighting) are Hu et al.'s ``1 + alpha·m``. A cell whose BM25 weight is 0 (an item
    every user has: idf 0) keeps confidence 1: it stays a preference.
    """
    extra = _extra_confidence(interactions, params)
    extra.data += np.float32(1.0)
    return extra


def _extra_confidence(interactions: sp.csr_matrix, params: ALSParams) -> sp.csr_matrix:
    """``c - 1`` per stored cell (what the kernels read). The default path multiplies the
    float32 values exactly as before the options existed, so default fits are unchanged."""
    matrix = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
    matrix.sort_indices()
    values: np.ndarray = matrix.data
    if params.weighting == "bm25":
        knn = ItemKNNParams(weighting="bm25", bm25_k1=params.bm25_k1, bm25_b=params.bm25_b)
        # elementwise on the same cells (explicit zeros kept), so the pattern is unchanged
        weighted = sp.csr_matrix(weighted_items(matrix, knn).T)
        weighted.sort_indices()
        values = weighted.data
    if params.confidence == "log":
        values = np.log1p(values / params.epsilon)
    matrix.data = (params.alpha * values).astype(np.float32)
    return matrix


def _gram(factors: np.ndarray, regularization: float) -> np.ndarray:
    gram: np.ndarray = factors.T @ factors
    gram[np.diag_indices_from(gram)] += regularization
    return gram.astype(np.float32)


def _sweep(
    rows: sp.csr_matrix,
    extra_conf: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    gram: np.ndarray,
    steps: int,
    with_loss: bool = False,
) -> float:
    """One CG half-step over every row of ``x``, blocks of rows on the task's threads; with
    ``with_loss``, the stored cells' loss after it (``_cg_sweep``), summed per fixed block
    and then over the blocks in order: the same figure on one thread or many."""
    partial = np.zeros(-(-x.shape[0] // _ROWS_PER_TASK))

    def run(start: int) -> None:
        stop = min(start + _ROWS_PER_TASK, x.shape[0])
        partial[start // _ROWS_PER_TASK] = _cg_sweep(
            rows.indptr, rows.indices, extra_conf, x, y, gram, steps, start, stop, with_loss
        )

    run_blocks(run, range(0, x.shape[0], _ROWS_PER_TASK), name="als")
    return float(partial.sum())


class ALSRecommender(Recommender):
    """Confidence-weighted implicit ALS for ranking (scores are preferences, not ratings)."""

    model_type = "als"
    short_name = "als"
    Params = ALSParams
    predicts_ratings = False
    state_shapes: ClassVar[dict[str, StateShape]] = {
        "user_factors": "users",
        "item_factors": "items",
    }

    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        params: ALSParams = self.params  # type: ignore[assignment]
        by_user = train.interactions().astype(np.float32)
        by_user.eliminate_zeros()
        if by_user.nnz == 0:
            raise DataValidationError(
                "the ALS model needs interactions, but train_implicit and train_ratings are empty"
            )
        # c - 1 per stored cell, in both orientations (the same values, transposed)
        by_user = _extra_confidence(by_user, params)
        by_item = sp.csr_matrix(by_user.T)
        by_item.sort_indices()
        extra_user, extra_item = by_user.data, by_item.data

        rng = np.random.default_rng(params.seed)
        shape_u, shape_i = (train.n_users, params.n_factors), (train.n_items, params.n_factors)
        x = (rng.standard_normal(shape_u) * params.init_std).astype(np.float32)
        y = (rng.standard_normal(shape_i) * params.init_std).astype(np.float32)
        lam = params.regularization
        report = FitReport(0.0, n_train=int(by_user.nnz))
        for iteration in range(1, params.n_iterations + 1):
            _sweep(by_user, extra_user, x, y, _gram(y, lam), params.cg_steps)
            sparse_part = _sweep(by_item, extra_item, y, x, _gram(x, lam), params.cg_steps, True)
            # Full objective without touching the dense matrix: Σ_all s² comes from the Grams.
            dense_part = float(np.sum((x.T @ x) * (y.T @ y)))
            penalty = lam * float(np.sum(x * x) + np.sum(y * y))
            record: EpochRecord = {
                "epoch": iteration,
                "train_loss": (dense_part + sparse_part + penalty) / by_user.nnz,
            }
            report.history.append(record)
            on_epoch(record)
        return {"user_factors": x, "item_factors": y}, report

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        x, y = self._state["user_factors"], self._state["item_factors"]
        scores: np.ndarray = np.einsum("nk,nk->n", x[users], y[items])
        return scores.astype(np.float32)

    def _score_items(self, users: np.ndarray) -> np.ndarray:
        x = self._state["user_factors"]
        scores: np.ndarray = x[users] @ self._transposed_state("item_factors")
        return scores.astype(np.float32, copy=False)

    def fold_in(self, history: History, rows: np.ndarray) -> np.ndarray:
        """User factors for history rows, by the closed form of the user step
        ``x = (YᵀY + Yᵀ(C - I)Y + λI)⁻¹ YᵀC p`` against the fitted item factors, with the
        training's confidence transform (``confidence_matrix``; solved exactly, not by CG
        steps: there is no previous factor to warm-start from). An empty history gives a zero
        factor. BM25 weighting is left out: its item weights come from the whole training
        matrix, which a fitted model does not keep."""
        params: ALSParams = self.params  # type: ignore[assignment]
        y = self._state["item_factors"]
        selected = history.rows(rows)
        unweighted = params.model_copy(update={"weighting": "none"})
        extra = _extra_confidence(selected, unweighted)  # sorted copy: read its pattern too
        k = y.shape[1]
        a = np.empty((rows.size, k, k), np.float64)
        b = np.empty((rows.size, k), np.float64)
        y64 = y.astype(np.float64)
        gram = y64.T @ y64
        gram[np.diag_indices_from(gram)] += params.regularization
        _fold_in_systems(extra.indptr, extra.indices, extra.data, y, gram, a, b)
        factors: np.ndarray = np.linalg.solve(a, b[:, :, None])[:, :, 0]
        return factors.astype(np.float32)

    def _score_history(self, history: History, rows: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self.fold_in(history, rows) @ self._transposed_state("item_factors")
        return scores.astype(np.float32, copy=False)
