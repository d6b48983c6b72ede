"""Biased matrix factorisation trained by SGD, with the update rules of Surprise's ``SVD``.

Prediction ``r̂ = μ + b_u + b_i + p_u·q_i`` (just ``p_u·q_i`` when ``biased`` is off); for each
rating, with ``e = r - r̂``::

    b_u += lr (e - reg b_u)        b_i += lr (e - reg b_i)
    p_u += lr (e q_i - reg p_u)    q_i += lr (e p_u - reg q_i)   (both from the old values)

Ratings are visited user by user, as Surprise does, but in a user order reshuffled by
``seed`` every epoch (each user's ratings in a seeded random order). Keeping one user's row
hot in cache makes an epoch ~3x faster on 1M ratings than a global shuffle, at the same
accuracy. SGD is sequential per rating, so the epoch loop is a numba kernel (float32,
fastmath).
With ``validation_fraction > 0`` a random share of the ratings is held out: its RMSE is
tracked per epoch and, with ``patience > 0``, training stops once it has not improved for
``patience`` epochs and the best epoch's parameters are kept. With
``refit_after_early_stopping`` (the default) the model is then refitted on every rating,
validation share included, for the best epoch's number of epochs (same seed); the fit report
records it under ``refit`` (its ``history`` stays the validation run's).

A user the model never saw is scored by folding in a bias and a factor from the ratings in
their history (``fold_in``: one regularised least-squares solve against the fitted items).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from recomart_pipeline.contract.errors import DataValidationError, TaskError
from recomart_pipeline.ml._jit import kernel
from recomart_pipeline.ml.base import (
    EpochCallback,
    FitReport,
    History,
    Ratings,
    Recommender,
    StateShape,
    TrainingData,
)
from recomart_pipeline.ml.params import SVDParams


@kernel
def _sgd_epoch(
    indptr: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    user_order: np.ndarray,
    mu: np.float32,
    bu: np.ndarray,
    bi: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    lr: np.float32,
    reg: np.float32,
    biased: bool,
) -> float:
    """One pass, user block by user block; returns the squared errors seen before updates.

    ``items``/``ratings`` are grouped by user with ``indptr`` (CSR layout)."""
    n_factors = p.shape[1]
    shrink = np.float32(1.0) - lr * reg
    squared = 0.0
    for b in range(user_order.shape[0]):
        u = user_order[b]
        pu = p[u]
        for idx in range(indptr[u], indptr[u + 1]):
            i = items[idx]
            qi = q[i]
            dot = np.float32(0.0)
            for f in range(n_factors):
                dot += pu[f] * qi[f]
            err = np.float32(ratings[idx] - (mu + bu[u] + bi[i] + dot))
            squared += float(err * err)
            if biased:
                bu[u] += lr * (err - reg * bu[u])
                bi[i] += lr * (err - reg * bi[i])
            step = lr * err
            for f in range(n_factors):
                puf = pu[f]
                qif = qi[f]
                pu[f] = shrink * puf + step * qif
                qi[f] = shrink * qif + step * puf
    return squared


@kernel
def _predict_pairs(
    users: np.ndarray,
    items: np.ndarray,
    mu: np.float32,
    bu: np.ndarray,
    bi: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    low: np.float32,
    high: np.float32,
    out: np.ndarray,
) -> None:
    """Clipped predictions for parallel (user, item) arrays, without n x k temporaries."""
    n_factors = p.shape[1]
    for n in range(users.shape[0]):
        u = users[n]
        i = items[n]
        value = mu + bu[u] + bi[i]
        for f in range(n_factors):
            value += p[u, f] * q[i, f]
        out[n] = min(max(value, low), high)


@kernel
def _fold_in_systems(
    rows: np.ndarray,
    indptr: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    mu: np.float32,
    bi: np.ndarray,
    q: np.ndarray,
    reg: float,
    biased: bool,
    a_out: np.ndarray,
    b_out: np.ndarray,
) -> None:
    """Per history row, the normal equations of the ridge regression of the row's residual
    ratings ``r - μ - b_i`` on ``[1, q_i]`` (``[q_i]`` unbiased), penalised by
    ``reg · n_ratings`` as the SGD objective penalises a user once per rating. Fills the
    zeroed ``a_out``/``b_out`` (float64) in the order of the row's ratings."""
    k = q.shape[1]
    offset = 1 if biased else 0
    dim = k + offset
    feature = np.empty(dim, np.float64)
    for n in range(rows.shape[0]):
        r = rows[n]
        a = a_out[n]
        b = b_out[n]
        for nz in range(indptr[r], indptr[r + 1]):
            i = items[nz]
            if biased:
                feature[0] = 1.0
            for f in range(k):
                feature[offset + f] = q[i, f]
            target = np.float64(ratings[nz] - mu - bi[i])
            for p in range(dim):
                b[p] += target * feature[p]
                for c in range(dim):
                    a[p, c] += feature[p] * feature[c]
        penalty = reg * max(indptr[r + 1] - indptr[r], 1)
        for p in range(dim):
            a[p, p] += penalty


class SVDRecommender(Recommender):
    """Surprise-compatible biased SVD (explicit ratings), ranked by predicted rating."""

    model_type = "collaborative_filtering_svd"
    short_name = "svd"
    Params = SVDParams
    requires_ratings = True
    serial_fit = True
    state_shapes: ClassVar[dict[str, StateShape]] = {
        "user_factors": "users",
        "item_factors": "items",
        "user_bias": "users",
        "item_bias": "items",
        "global_mean": "scalar",
        "rating_min": "scalar",
        "rating_max": "scalar",
    }

    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        params: SVDParams = self.params  # type: ignore[assignment]
        ratings = train.ratings
        shuffled = np.random.default_rng(params.seed).permutation(len(ratings))
        n_val = round(len(ratings) * params.validation_fraction)
        if n_val >= len(ratings):
            raise DataValidationError("validation_fraction leaves no ratings to fit on")
        state, report = self._sgd(
            train, ratings.subset(shuffled[n_val:]), ratings.subset(shuffled[:n_val]), on_epoch
        )
        if (
            params.refit_after_early_stopping
            and params.patience
            and report.n_validation
            and report.best_epoch is not None
        ):
            # Early stopping chose the epoch count; the held-out share was only needed for
            # that choice, so the final model learns from every rating for that many epochs.
            epochs = report.best_epoch
            state, refit = self._sgd(train, ratings.subset(shuffled), None, None, epochs)
            report.refit = {
                "epochs": epochs,
                "n_train": refit.n_train,
                "train_rmse": refit.final("train_rmse"),
            }
        return state, report

    def _sgd(
        self,
        train: TrainingData,
        fit_part: Ratings,
        val_part: Ratings | None,
        on_epoch: EpochCallback | None,
        n_epochs: int | None = None,
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        """SGD on ``fit_part`` (in its given order within each user) for ``n_epochs`` (the
        params' by default), tracking ``val_part`` and stopping early on it when given.

        Each call starts from a fresh ``seed`` stream, so a refit starts from the very
        initialisation and the same per-epoch user orders as the validation run."""
        params: SVDParams = self.params  # type: ignore[assignment]
        rng = np.random.default_rng(params.seed)
        rng.permutation(len(train.ratings))  # the split's draw: keep the streams aligned
        # group by user, keeping the random order within each user
        fit_part = fit_part.subset(np.argsort(fit_part.users, kind="stable"))
        if val_part is None:
            val_part = fit_part.subset(np.empty(0, np.int64))
        per_user = np.bincount(fit_part.users, minlength=train.n_users)
        indptr = np.concatenate([[0], np.cumsum(per_user)])

        f32 = np.float32
        mu = f32(fit_part.values.mean()) if params.biased else f32(0.0)
        low, high = f32(train.ratings.values.min()), f32(train.ratings.values.max())
        shape_u, shape_i = (train.n_users, params.n_factors), (train.n_items, params.n_factors)
        p = rng.normal(0.0, params.init_std, shape_u).astype(f32)
        q = rng.normal(0.0, params.init_std, shape_i).astype(f32)
        bu = np.zeros(train.n_users, f32)
        bi = np.zeros(train.n_items, f32)
        lr, reg = f32(params.learning_rate), f32(params.regularization)

        report = FitReport(0.0, n_train=len(fit_part), n_validation=len(val_part))
        val_pred = np.empty(len(val_part), f32)
        best_rmse, best_state, waited = math.inf, None, 0
        for epoch in range(1, (n_epochs or params.n_epochs) + 1):
            user_order = rng.permutation(train.n_users).astype(np.int32)
            squared = _sgd_epoch(
                indptr,
                fit_part.items,
                fit_part.values,
                user_order,
                mu,
                bu,
                bi,
                p,
                q,
                lr,
                reg,
                params.biased,
            )
            train_rmse = math.sqrt(squared / len(fit_part))
            if not math.isfinite(train_rmse):
                raise TaskError(
                    f"SGD diverged in epoch {epoch} (training error became {train_rmse})",
                    hint=f"lower learning_rate (now {params.learning_rate}) or raise "
                    "regularization",
                )
            record: dict[str, float | int | None] = {
                "epoch": epoch,
                "train_rmse": train_rmse,
                "val_rmse": None,
            }
            if len(val_part):
                _predict_pairs(
                    val_part.users, val_part.items, mu, bu, bi, p, q, low, high, val_pred
                )
                val_rmse = float(np.sqrt(np.mean((val_pred - val_part.values) ** 2)))
                record["val_rmse"] = val_rmse
                if val_rmse < best_rmse - params.min_delta:
                    best_rmse, waited, report.best_epoch = val_rmse, 0, epoch
                    if params.patience:
                        best_state = (bu.copy(), bi.copy(), p.copy(), q.copy())
                else:
                    waited += 1
            report.history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            if params.patience and len(val_part) and waited >= params.patience:
                report.stopped_early = epoch < params.n_epochs
                break
        if best_state is not None:
            bu, bi, p, q = best_state

        # Users/items without a fitted rating keep their random init; zero them so they get
        # the baseline estimate (as Surprise does for unknown ids) instead of noise.
        p[per_user == 0] = 0.0
        q[np.bincount(fit_part.items, minlength=train.n_items) == 0] = 0.0
        state = {
            "user_factors": p,
            "item_factors": q,
            "user_bias": bu,
            "item_bias": bi,
            "global_mean": np.asarray(mu, f32),
            "rating_min": np.asarray(low, f32),
            "rating_max": np.asarray(high, f32),
        }
        return state, report

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        s = self._state
        out = np.empty(users.size, np.float32)
        _predict_pairs(
            users,
            items,
            np.float32(s["global_mean"]),
            s["user_bias"],
            s["item_bias"],
            s["user_factors"],
            s["item_factors"],
            np.float32(s["rating_min"]),
            np.float32(s["rating_max"]),
            out,
        )
        return out

    def _score_items(self, users: np.ndarray) -> np.ndarray:
        s = self._state
        scores: np.ndarray = s["user_factors"][users] @ self._transposed_state("item_factors")
        scores += s["item_bias"]
        scores += (s["global_mean"] + s["user_bias"][users])[:, None]
        return scores.astype(np.float32, copy=False)

    def fold_in(self, history: History, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(user_bias, user_factors)`` for history rows, from the rows' explicit ratings:
        the regularised least-squares solve of the training objective for one user against
        the fitted item factors and biases. SVD learns from ratings only, so a row without
        ratings gets zeros (it is ranked by the item biases, as the bias model ranks)."""
        params: SVDParams = self.params  # type: ignore[assignment]
        s = self._state
        q = s["item_factors"]
        dim = q.shape[1] + (1 if params.biased else 0)
        a = np.zeros((rows.size, dim, dim), np.float64)
        b = np.zeros((rows.size, dim), np.float64)
        indptr, items, values = history.ratings_by_row
        _fold_in_systems(
            rows,
            indptr,
            items,
            values,
            np.float32(s["global_mean"]),
            s["item_bias"],
            q,
            float(params.regularization),
            params.biased,
            a,
            b,
        )
        solved = np.linalg.solve(a, b[:, :, None])[:, :, 0].astype(np.float32)
        if params.biased:
            return solved[:, 0], solved[:, 1:]
        return np.zeros(rows.size, np.float32), solved

    def _score_history(self, history: History, rows: np.ndarray) -> np.ndarray:
        s = self._state
        user_bias, factors = self.fold_in(history, rows)
        scores: np.ndarray = factors @ self._transposed_state("item_factors")
        scores += s["item_bias"]
        scores += (s["global_mean"] + user_bias)[:, None]
        return scores.astype(np.float32, copy=False)
