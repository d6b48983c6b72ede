"""What the service holds in memory for one model version, and the hot-reload watcher.

A request reads one ``ServingState`` reference; a reload builds a complete new state and
swaps the reference, so a request sees entirely the old or entirely the new model.

The registry is a folder anyone with write access can edit, so a champion that cannot be
loaded (tampered, half-copied, hand-edited) must not take the service down: the watcher
refuses it, logs that once, keeps the model it holds and reports the problem in ``/health``
until a champion that loads is promoted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recomart_pipeline.contract.errors import TaskError
from recomart_pipeline.deployment.registry import ModelRegistry, ModelVersion
from recomart_pipeline.ml.base import Recommender
from recomart_pipeline.ml.persistence import load_model

LOGGER = logging.getLogger("recomart_pipeline.serving")
MAX_REASON_CHARS = 500


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


@dataclass(frozen=True)
class Problem:
    """Why the service is not serving the registry's champion: ``kind`` is
    ``champion_refused`` (``version`` is what ``champion.json`` names, None when it names
    nothing readable), ``no_champion`` or ``registry_unreachable``."""

    kind: Literal["champion_refused", "no_champion", "registry_unreachable"]
    version: str | None
    reason: str
    since: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def same_as(self, other: Problem | None) -> bool:
        return other is not None and (other.kind, other.version, other.reason) == (
            self.kind,
            self.version,
            self.reason,
        )

    def describe(self) -> str:
        if self.kind != "champion_refused":
            return self.reason
        return f"champion {self.version or '(unreadable pointer)'} refused: {self.reason}"


def printable(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` without control characters and bounded: it ends up in logs and HTTP answers."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return printable(text if isinstance(exc, TaskError) else f"{type(exc).__name__}: {text}")


def _named_version(registry: ModelRegistry) -> str | None:
    """The version ``champion.json`` names, if it names a string (for the refusal report)."""
    try:
        pointer = json.loads((registry.root / "champion.json").read_text())
    except (OSError, ValueError):
        return None
    version = pointer.get("version") if isinstance(pointer, dict) else None
    return printable(version, 80) if isinstance(version, str) else None


class ChampionWatcher:
    """Keeps the champion loaded; reloads when ``champion.json`` changes (checked per request;
    a registry in an object store is polled at most every ``refresh_seconds``).

    A champion that fails to load is refused: the model already held keeps answering and
    ``problem`` says which version was refused and why. Each distinct problem is logged once,
    however many requests run into it; the next change of ``champion.json`` is tried again.
    """

    def __init__(self, registry: ModelRegistry, refresh_seconds: float = 2.0) -> None:
        self.registry = registry
        self._state: ServingState | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._checked = False
        self._lock = threading.Lock()
        self._refresh_seconds = refresh_seconds
        self._refreshed_at = float("-inf")
        self._refresh_failed = False
        self.problem: Problem | None = None
        self.reloads = 0
        self.refusals = 0  # champions that failed to load

    def _refresh_remote(self, force: bool = False) -> None:
        if self.registry.remote is None:
            return
        if force or time.monotonic() - self._refreshed_at >= self._refresh_seconds:
            self._refreshed_at = time.monotonic()
            try:
                self.registry.refresh()
            except Exception as exc:  # an unreachable store: keep serving what we hold
                with self._lock:
                    self._refresh_failed = True
                    self._report(
                        Problem(
                            "registry_unreachable",
                            None,
                            f"cannot refresh the registry: {_reason(exc)}",
                        )
                    )
                return
            if self._refresh_failed:  # back in touch: judge the champion afresh
                self._refresh_failed, self._checked = False, False

    def _pointer_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = (self.registry.root / "champion.json").stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def current(self) -> ServingState | None:
        self._refresh_remote()
        if not self._checked or self._pointer_stamp() != self._stamp:
            self._sync(force=False)
        return self._state

    def reload(self) -> ServingState | None:
        """Load the champion again even if its pointer did not change (after files were fixed)."""
        self._refresh_remote(force=True)
        return self._sync(force=True)

    def _sync(self, force: bool) -> ServingState | None:
        with self._lock:
            stamp = self._pointer_stamp()
            if self._checked and stamp == self._stamp and not force:
                return self._state  # another request already handled this change
            self._stamp, self._checked = stamp, True
            try:
                champion = self.registry.champion()
                if champion is None:
                    self._report(
                        Problem(
                            "no_champion",
                            None,
                            f"no champion in {self.registry.root}: promote a model version "
                            "(deploy, approve or rollback)",
                        ),
                        logging.WARNING,
                    )
                    return self._state
                if self._state is None or self._state.version.version != champion.version:
                    self._state = load_state(self.registry, champion)  # swap only when complete
                    self.reloads += 1
                    LOGGER.info("serving model %s", champion.version)
            except Exception as exc:  # whatever the registry holds, the service stays up
                self.refusals += 1
                self._report(
                    Problem("champion_refused", _named_version(self.registry), _reason(exc))
                )
                return self._state
            self.problem = None
            return self._state

    def _report(self, problem: Problem, level: int = logging.ERROR) -> None:
        """Record ``problem``; log it unless it is the one already reported (called locked)."""
        if problem.same_as(self.problem):
            return
        self.problem = problem
        held = self._state.version.version if self._state else None
        LOGGER.log(
            level,
            "%s; %s",
            problem.describe(),
            f"still serving {held}"
            if held
            else "no model to serve until a valid champion is promoted",
        )
