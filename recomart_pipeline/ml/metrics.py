"""Rating and top-K ranking metrics, vectorised over users.

Ranking metrics compare each user's recommended list (train items already excluded by the
caller) with that user's held-out interactions, using binary relevance, and average over
users who have at least one held-out interaction:

- precision@K = hits / K;  recall@K = hits / |relevant|
- NDCG@K = Σ_r hit_r / log2(r + 2) ÷ the same for an ideal list of min(K, |relevant|) hits
- MAP@K = mean of AP@K = Σ_r precision@r · hit_r / min(K, |relevant|)
- hit rate = share of users with at least one hit
- coverage = distinct recommended items / catalogue size (over all evaluated lists)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from recomart_pipeline.ml.params import RANKING_METRICS


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats (missing or meaningless metrics) replaced by None."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error; NaN when there is nothing to compare."""
    diff = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
    return float(np.sqrt(np.mean(diff**2))) if diff.size else float("nan")


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error; NaN when there is nothing to compare."""
    diff = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
    return float(np.mean(np.abs(diff))) if diff.size else float("nan")


def hit_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """``hits[u, r]``: is ``recommended[u, r]`` stored in row ``u`` of ``relevant``? (-1 = no)."""
    relevant = sp.csr_matrix(relevant)
    relevant.sort_indices()
    n_rows, n_cols = relevant.shape
    if recommended.shape[0] != n_rows:
        raise ValueError(
            f"recommended has {recommended.shape[0]} rows but relevant has {n_rows}; "
            "pass the held-out rows of the same users, in the same order"
        )
    # Encode (row, item) as one int64 key; CSR order makes the relevant keys already sorted.
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(relevant.indptr))
    keys = rows * n_cols + relevant.indices
    query = np.arange(n_rows, dtype=np.int64)[:, None] * n_cols + recommended
    pos = np.minimum(np.searchsorted(keys, query), max(keys.size - 1, 0))
    found = keys[pos] == query if keys.size else np.zeros(query.shape, dtype=bool)
    return found & (recommended >= 0)


def ranking_values(
    recommended: np.ndarray, relevant: sp.csr_matrix, k: int
) -> dict[str, np.ndarray]:
    """Per-user precision, recall, NDCG, MAP and hit at ``k`` (keys ``<name>_at_<k>``), for
    the users with at least one held-out item, in row order.

    ``recommended`` is ``n_users x >=k`` item indices (best first, ``-1`` for empty slots);
    ``relevant`` holds the same users' held-out items, row for row.
    """
    recommended = _top_k_slots(recommended, k)
    hits = hit_matrix(recommended, relevant).astype(np.float64)
    n_relevant = np.diff(sp.csr_matrix(relevant).indptr)
    users = n_relevant > 0
    hits, n_relevant = hits[users], n_relevant[users]
    ranks = np.arange(1, k + 1, dtype=np.float64)
    discounts = 1.0 / np.log2(ranks + 1.0)
    n_hits = hits.sum(axis=1)
    ideal_len = np.minimum(n_relevant, k)
    ideal = np.cumsum(discounts)[ideal_len - 1] if users.any() else np.zeros(0)
    precision_at_rank = np.cumsum(hits, axis=1) / ranks
    values = {
        "precision": n_hits / k,
        "recall": n_hits / n_relevant,
        "ndcg": (hits * discounts).sum(axis=1) / ideal,
        "map": (precision_at_rank * hits).sum(axis=1) / ideal_len,
        "hit_rate": (n_hits > 0).astype(np.float64),
    }
    return {f"{name}_at_{k}": value for name, value in values.items()}


def _top_k_slots(recommended: np.ndarray, k: int) -> np.ndarray:
    recommended = np.asarray(recommended)[:, :k]
    if recommended.shape[1] < k:  # fewer slots than k: the missing ones are misses
        padding = np.full((recommended.shape[0], k - recommended.shape[1]), -1)
        recommended = np.hstack([recommended, padding])
    return recommended


def ranking_metrics(
    recommended: np.ndarray, relevant: sp.csr_matrix, k: int, n_items: int
) -> dict[str, float]:
    """Precision, recall, NDCG, MAP, hit rate and coverage at ``k`` (keys ``<name>_at_<k>``):
    the means of ``ranking_values`` over users, and catalogue coverage of their lists."""
    values = ranking_values(recommended, relevant, k)
    names = [f"{name}_at_{k}" for name in RANKING_METRICS]
    if not next(iter(values.values())).size:
        return dict.fromkeys(names, float("nan"))
    result = {name: float(value.mean()) for name, value in values.items()}
    shown = _top_k_slots(recommended, k)[np.diff(sp.csr_matrix(relevant).indptr) > 0]
    result[f"coverage_at_{k}"] = float(np.unique(shown[shown >= 0]).size / n_items)
    return result


def bootstrap_intervals(
    values: dict[str, np.ndarray],
    *,
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    batch: int = 25,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each per-user metric's mean, resampling users.

    Every metric uses the same resamples, so intervals of different metrics (and of different
    models scored on the same users with the same seed) are comparable. Resamples are drawn in
    batches to bound memory (``batch x n_users`` indices at a time).
    """
    n_users = next(iter(values.values())).size if values else 0
    if n_users == 0:
        return {name: (float("nan"), float("nan")) for name in values}
    rng = np.random.default_rng(seed)
    means: dict[str, list[np.ndarray]] = {name: [] for name in values}
    for start in range(0, resamples, batch):
        picks = rng.integers(0, n_users, size=(min(batch, resamples - start), n_users))
        for name, value in values.items():
            means[name].append(value[picks].mean(axis=1))
    tail = (1 - confidence) / 2 * 100
    return {
        name: (
            float(np.percentile(np.concatenate(parts), tail)),
            float(np.percentile(np.concatenate(parts), 100 - tail)),
        )
        for name, parts in means.items()
    }
