"""The popularity baseline every candidate must beat.

Ranking: items by how many users interacted with them (or by their summed confidence), the
same list for everyone. Ratings: global mean plus a damped item bias
``b_i = Σ(r - μ) / (n_i + damping)``, so its RMSE is a fair yardstick for rating models.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from recomart_pipeline.ml._topk import rank_items, top_k_ranked
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
from recomart_pipeline.ml.params import PopularityParams


class PopularityRecommender(Recommender):
    """Non-personalised baseline: most popular unseen items; mean + item bias for ratings."""

    model_type = "popularity"
    short_name = "popularity"
    Params = PopularityParams
    state_shapes: ClassVar[dict[str, StateShape]] = {
        "item_scores": "items",
        "item_bias": "items",
        "global_mean": "scalar",
        "rating_min": "scalar",
        "rating_max": "scalar",
    }

    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        params: PopularityParams = self.params  # type: ignore[assignment]
        interactions = train.interactions()
        if params.count == "interactions":
            scores = np.diff(interactions.tocsc().indptr).astype(np.float32)
        else:
            scores = np.asarray(interactions.sum(axis=0), dtype=np.float32).ravel()

        ratings = train.ratings
        f32 = np.float32
        if len(ratings):
            mu = float(ratings.values.mean())
            residual = np.bincount(ratings.items, ratings.values - mu, minlength=train.n_items)
            counts = np.bincount(ratings.items, minlength=train.n_items)
            denominator = counts + params.damping
            bias = np.zeros(train.n_items, f32)
            np.divide(residual, denominator, out=bias, where=denominator > 0, casting="unsafe")
            low, high = ratings.values.min(), ratings.values.max()
        else:
            mu, low, high = 0.0, -np.inf, np.inf
            bias = np.zeros(train.n_items, f32)
        state = {
            "item_scores": scores,
            "item_bias": bias,
            "global_mean": np.asarray(mu, f32),
            "rating_min": np.asarray(low, f32),
            "rating_max": np.asarray(high, f32),
        }
        return state, FitReport(0.0, n_train=len(ratings))

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        s = self._state
        estimate: np.ndarray = s["global_mean"] + s["item_bias"][items]
        clipped: np.ndarray = np.clip(estimate, s["rating_min"], s["rating_max"])
        return clipped.astype(np.float32)

    def _score_items(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self._state["item_scores"].astype(np.float32), (users.size, 1))

    def _score_history(self, history: History, rows: np.ndarray) -> np.ndarray:
        """A user with a history gets the same scores as everyone: the item popularity."""
        return self._score_items(rows)

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
        """Everyone shares one ranking, so walk it past each user's seen items: O(k + seen)
        per user instead of scoring (and tiling) the whole catalogue for every user. Nothing
        dense is materialised, so there is nothing to chunk (``chunk_size`` is not needed),
        and a user known from training or from a history gets the same list (``score`` is
        not needed either)."""
        scores = self._state["item_scores"].astype(np.float32)
        ranked = rank_items(scores)  # equal scores: the lower item first, as top_k_rows
        top_k_ranked(
            ranked,
            scores[ranked],
            users,
            seen.indptr,
            seen.indices,
            seen.stored,
            self.n_items,
            k,
            items_out,
            scores_out,
        )
