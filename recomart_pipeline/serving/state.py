"""What the service holds in memory for one model version, and the hot-reload watcher.

A request reads one ``ServingState`` reference; a reload builds a complete new state and
swaps the reference, so a request sees entirely the old or entirely the new model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recomart_pipeline.deployment.registry import ModelRegistry, ModelVersion
from recomart_pipeline.ml.base import Recommender
from recomart_pipeline.ml.persistence import load_model


@dataclass(frozen=True)
class ServingState:
    version: ModelVersion
    model: Recommender
    user_index: dict[str, int]
    item_ids: np.ndarray
    seen: sp.csr_matrix
    popular: np.ndarray  # item indices, most interacted first

    def recommend(self, user_id: str, k: int) -> tuple[str, list[dict[str, object]]]:
        index = self.user_index.get(user_id)
        if index is None:
            top = self.popular[:k]
            return "popular", [{"item_id": str(self.item_ids[i]), "score": None} for i in top]
        items, scores = self.model.recommend(
            np.array([index], dtype=np.int32), k, exclude=self.seen
        )
        picks = [
            {"item_id": str(self.item_ids[i]), "score": float(s)}
            for i, s in zip(items[0], scores[0], strict=True)
            if i >= 0
        ]
        return "personalized", picks


def load_state(registry: ModelRegistry, version: ModelVersion) -> ServingState:
    folder = registry.version_dir(version.version)
    model = load_model(
        folder / version.model_file, expected_sha256=version.sha256, allow_pickle=False
    )
    users = pd.read_parquet(folder / "user_index.parquet")
    items = pd.read_parquet(folder / "item_index.parquet").sort_values("item_idx")
    seen = sp.csr_matrix(sp.load_npz(folder / "train_implicit.npz"))
    popularity = np.asarray(seen.sum(axis=0)).ravel()
    return ServingState(
        version=version,
        model=model,
        user_index=dict(
            zip(users["user_id"].astype(str), users["user_idx"].astype(int), strict=True)
        ),
        item_ids=items["item_id"].astype(str).to_numpy(),
        seen=seen,
        popular=np.argsort(-popularity, kind="stable"),
    )


class ChampionWatcher:
    """Keeps the champion loaded; reloads when ``champion.json`` changes (checked per request;
    a registry in an object store is polled at most every ``refresh_seconds``)."""

    def __init__(self, registry: ModelRegistry, refresh_seconds: float = 2.0) -> None:
        self.registry = registry
        self._state: ServingState | None = None
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._refresh_seconds = refresh_seconds
        self._refreshed_at = float("-inf")
        self.reloads = 0

    def _refresh_remote(self) -> None:
        if self.registry.remote is None:
            return
        if time.monotonic() - self._refreshed_at >= self._refresh_seconds:
            self._refreshed_at = time.monotonic()
            self.registry.refresh()

    def _pointer_stamp(self) -> tuple[int, int] | None:
        try:
            stat = (self.registry.root / "champion.json").stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def current(self) -> ServingState | None:
        self._refresh_remote()
        stamp = self._pointer_stamp()
        if stamp != self._stamp:
            self.reload()
        return self._state

    def reload(self) -> ServingState | None:
        with self._lock:
            stamp = self._pointer_stamp()
            champion = self.registry.champion()
            if champion is None:
                self._state, self._stamp = None, stamp
                return None
            if self._state is None or self._state.version.version != champion.version:
                self._state = load_state(self.registry, champion)  # swap only when complete
                self.reloads += 1
            self._stamp = stamp
            return self._state
