"""The bias-only rating baseline: ``r̂ = μ + b_u + b_i`` (Koren's baseline predictor).

Biases are fitted by alternating regularised least squares, as Surprise's ``BaselineOnly``
(method 'als') does: each sweep sets every item bias, then every user bias, to its closed-form
optimum given the other::

    b_i = Σ_u (r - μ - b_u) / (item_regularization + n_i)
    b_u = Σ_i (r - μ - b_i) / (user_regularization + n_u)

Any rating model worth deploying should have a lower RMSE than this; evaluation shows the two
side by side. Ranking is by ``b_i`` (the same order for everyone, like popularity, but by how
well an item is rated rather than how often).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from recomart_pipeline.ml._topk import rank_items, top_k_shifted
from recomart_pipeline.ml.base import (
    EpochCallback,
    FitReport,
    History,
    Recommender,
    ScoreRows,
    SeenItems,
    StateShape,
    TrainingData,
)
from recomart_pipeline.ml.params import BiasParams


class BiasRecommender(Recommender):
    """Global mean plus regularised user and item biases; no personalised factors."""

    model_type = "baseline_bias"
    short_name = "bias"
    Params = BiasParams
    requires_ratings = True
    state_shapes: ClassVar[dict[str, StateShape]] = {
        "user_bias": "users",
        "item_bias": "items",
        "global_mean": "scalar",
        "rating_min": "scalar",
        "rating_max": "scalar",
    }

    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        params: BiasParams = self.params  # type: ignore[assignment]
        ratings = train.ratings
        users, items = ratings.users, ratings.items
        values = ratings.values.astype(np.float64)
        mu = float(values.mean())
        n_u = np.bincount(users, minlength=train.n_users).astype(np.float64)
        n_i = np.bincount(items, minlength=train.n_items).astype(np.float64)
        bu: np.ndarray = np.zeros(train.n_users)
        bi: np.ndarray = np.zeros(train.n_items)
        residual = values - mu
        # users/items without ratings keep a zero bias (0/0 when the regularisation is 0)
        item_denominator = params.item_regularization + n_i
        user_denominator = params.user_regularization + n_u
        report = FitReport(0.0, n_train=len(ratings))
        for sweep in range(1, params.n_iterations + 1):
            sums = np.bincount(items, residual - bu[users], minlength=train.n_items)
            bi = np.divide(sums, item_denominator, out=np.zeros_like(sums), where=n_i > 0)
            sums = np.bincount(users, residual - bi[items], minlength=train.n_users)
            bu = np.divide(sums, user_denominator, out=np.zeros_like(sums), where=n_u > 0)
            error = residual - bu[users] - bi[items]
            record: dict[str, float | int | None] = {
                "epoch": sweep,
                "train_rmse": math.sqrt(float(np.mean(error * error))),
                "val_rmse": None,
            }
            report.history.append(record)
            on_epoch(record)
        f32 = np.float32
        state = {
            "user_bias": bu.astype(f32),
            "item_bias": bi.astype(f32),
            "global_mean": np.asarray(mu, f32),
            "rating_min": np.asarray(ratings.values.min(), f32),
            "rating_max": np.asarray(ratings.values.max(), f32),
        }
        return state, report

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        s = self._state
        estimate = s["global_mean"] + s["user_bias"][users] + s["item_bias"][items]
        clipped: np.ndarray = np.clip(estimate, s["rating_min"], s["rating_max"])
        return clipped.astype(np.float32)

    def _score_items(self, users: np.ndarray) -> np.ndarray:
        s = self._state
        scores = (s["global_mean"] + s["user_bias"][users])[:, None] + s["item_bias"][None, :]
        return np.ascontiguousarray(scores, dtype=np.float32)

    def _score_history(self, history: History, rows: np.ndarray) -> np.ndarray:
        """An unseen user's estimate is ``μ + b_i``: a user bias folded in from the history
        would shift every item by the same amount and not change the ranking."""
        s = self._state
        scores = np.broadcast_to(s["global_mean"] + s["item_bias"], (rows.size, self.n_items))
        return np.ascontiguousarray(scores, dtype=np.float32)

    def _recommend_into(
        self,
        users: np.ndarray,
        k: int,
        seen: SeenItems,
        items_out: np.ndarray,
        scores_out: np.ndarray,
        chunk_size: int,
        score: ScoreRows | None = None,
    ) -> None:
        """A user's scores are the item biases shifted by one number (``μ + b_u``; ``μ`` for
        a history row, as ``_score_history``), so everyone walks one list by ``b_i``:
        O(k + seen) per user instead of a dense users x items score matrix. The outputs
        are the dense scores' (``top_k_shifted``); ``chunk_size`` is not needed."""
        s = self._state
        if score is None or score == self._ranking_scores:
            offsets = s["global_mean"] + s["user_bias"][users]  # as _score_items adds them
        else:  # recommend_history's rows
            offsets = np.full(users.size, s["global_mean"], np.float32)
        values = s["item_bias"].astype(np.float32)
        ranked = rank_items(values)
        top_k_shifted(
            ranked,
            values[ranked],
            np.asarray(offsets, np.float32),
            users,
            seen.indptr,
            seen.indices,
            seen.stored,
            self.n_items,
            k,
            items_out,
            scores_out,
        )
