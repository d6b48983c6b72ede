"""What the service holds in memory for one model version, and the hot-reload watcher.

A request reads one ``ServingState`` reference; a reload builds a complete new state (model
loaded, arrays mapped, kernels warmed, answers verified on probe users) and only then swaps
the reference, so a request sees entirely the old or entirely the new model, and never pays
for a warm-up.

Known users are answered from the version's precomputed top-K arrays
(``deployment/serving_arrays.py``, memory-mapped: worker processes share them), unknown users
from its popularity ranking. Only a request the arrays cannot answer — ``k`` above the
precomputed K, or items to exclude — scores that one user live (``serving/live.py``: NumPy
over the model file's memory-mapped arrays for the built-in model types, so a worker imports
neither numba nor scipy nor pandas, and holds no private copy of the model; the same
arithmetic as the batch, so the same answer the arrays would give).

Loading checks every page of the arrays and then gives them back (``release_pages``); the
pages a precomputed answer reads (the top-K rows, the user and item ids) are then mapped in
again at once (``make_resident``), so that no request, the first one included, waits on a
page fault for them. Under load they all become resident within seconds anyway, so this
moves that cost to start-up without raising the memory a worker settles at; the model file
and the training history (read only by live scoring) stay out until a request reads them.

The registry is a folder anyone with write access can edit, so a champion that cannot be
loaded (tampered, half-copied, hand-edited) must not take the service down: the watcher
refuses it, logs that once, keeps the model it holds and reports the problem in ``/health``
until a champion that loads is promoted. A background timer notices a new champion; requests
never touch the filesystem.
"""

from __future__ import annotations

import json
import logging
import mmap
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from recomart_pipeline.contract.errors import TaskError
from recomart_pipeline.deployment.registry import ModelRegistry, ModelVersion
from recomart_pipeline.deployment.serving_arrays import (
    ARRAY_FILES,
    SOURCE_FILES,
    ServingArrays,
    ServingArraysError,
    build_from_files,
)
from recomart_pipeline.serving.live import LiveModel, load_live_model
from recomart_pipeline.serving.server import LOGGER_NAME

LOGGER = logging.getLogger(LOGGER_NAME)
MAX_REASON_CHARS = 500
# How often the background watcher looks at champion.json (a stat; no request does).
POLL_SECONDS = 0.5
# Users whose precomputed answers are checked against live scoring before a version serves.
PROBE_USERS = 3
PROBE_K = 10
# The arrays a precomputed answer reads (known and unknown users), kept mapped in.
REQUEST_ARRAYS = ("topk_items", "topk_scores", "user_ids", "user_rows", "item_ids", "popular_items")

Item = dict[str, object]


@dataclass(frozen=True)
class Answer:
    """One user's recommendations: ``strategy`` personalized/popular, ``source`` whether they
    came from the precomputed arrays or were scored live for this request; the items as
    catalogue indices (and scores, None for popular items) until they are rendered."""

    strategy: Literal["personalized", "popular"]
    source: Literal["precomputed", "live"]
    indices: list[int]
    scores: list[float] | None
    id_json: Sequence[str]  # the state's JSON-encoded item ids, by index

    @property
    def items(self) -> list[Item]:
        ids = [json.loads(self.id_json[i]) for i in self.indices]
        scores = self.scores if self.scores is not None else [None] * len(ids)
        return [{"item_id": i, "score": s} for i, s in zip(ids, scores, strict=True)]

    def items_json(self) -> str:
        """The items as a JSON array, rendered from pre-encoded ids (no per-item dicts)."""
        ids = self.id_json
        if self.scores is None:
            parts = [f'{{"item_id":{ids[i]},"score":null}}' for i in self.indices]
        else:
            parts = [
                f'{{"item_id":{ids[i]},"score":{s!r}}}'
                for i, s in zip(self.indices, self.scores, strict=True)
            ]
        return "[" + ",".join(parts) + "]"


@dataclass(frozen=True)
class ServingState:
    version: ModelVersion
    model: LiveModel
    arrays: ServingArrays
    item_order: np.ndarray  # item indices sorted by id (excluded ids -> indices)
    item_ids_sorted: np.ndarray  # item_ids[item_order]
    id_json: list[str]  # each item id JSON-encoded once, so answers render without dicts
    mapped: bool  # arrays memory-mapped from the registry (False: built in memory at load)
    probe: dict[str, object] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """How many items per known user the arrays hold."""
        return self.arrays.k

    def recommend(self, user_id: str, k: int, exclude: Sequence[str] = ()) -> Answer:
        """The top ``k`` for ``user_id`` without the ``exclude`` item ids (and, for a known
        user, without the items of their training history)."""
        arrays = self.arrays
        row = arrays.user_row(user_id)
        excluded = self.item_indices(exclude)
        if row is None:
            ranked = arrays.popular_items[: k + excluded.size]
            if excluded.size:
                ranked = ranked[~np.isin(ranked, excluded)]
            return Answer("popular", "precomputed", ranked[:k].tolist(), None, self.id_json)
        if k <= arrays.k and not excluded.size:
            items = arrays.topk_items[row, :k]
            filled = items >= 0
            return Answer(
                "personalized",
                "precomputed",
                items[filled].tolist(),
                arrays.topk_scores[row, :k][filled].tolist(),
                self.id_json,
            )
        items, scores = self.live(row, k, excluded)
        return Answer("personalized", "live", items.tolist(), scores.tolist(), self.id_json)

    def live(self, row: int, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score one user now, without their training items and ``excluded``; filled slots
        only."""
        return self.model.top_k(row, k, np.union1d(self.arrays.seen_of(row), excluded))

    def item_indices(self, item_ids: Sequence[str]) -> np.ndarray:
        """The catalogue indices of ``item_ids`` (ids the catalogue lacks are ignored)."""
        if not item_ids:
            return np.empty(0, np.int32)
        ids = self.arrays.item_ids
        keys = np.array([i.encode("utf-8", "surrogatepass") for i in item_ids], dtype=object)
        keys = keys[[len(key) <= ids.dtype.itemsize for key in keys]]
        if not keys.size or not ids.shape[0]:
            return np.empty(0, np.int32)
        wanted = keys.astype(ids.dtype)
        pos = np.searchsorted(self.item_ids_sorted, wanted).clip(0, ids.shape[0] - 1)
        found = self.item_order[pos]
        return np.unique(found[ids[found] == wanted]).astype(np.int32)


def _arrays_of(
    registry: ModelRegistry, version: ModelVersion, model: LiveModel
) -> tuple[ServingArrays, bool]:
    """The version's serving arrays, memory-mapped after their sha256 checks; a version
    registered without them has them built in memory from its index tables."""
    if all(name in version.serving_files for name in ARRAY_FILES):
        files = {name: registry.serving_file(version, name) for name in ARRAY_FILES}
        arrays = ServingArrays.load(files)
        if (arrays.n_users, arrays.n_items) != (model.n_users, model.n_items):
            raise ServingArraysError(
                f"the serving arrays of {version.version} hold {arrays.n_users} users x "
                f"{arrays.n_items} items, its model {model.n_users} x {model.n_items}",
                hint="register the model again with the deploy task",
            )
        return arrays, True
    sources = {name: registry.serving_file(version, name) for name in SOURCE_FILES}
    LOGGER.info(
        "model %s carries no precomputed top-K: building it in memory (deploy the model "
        "again so its version carries them and workers share them)",
        version.version,
    )
    model_file = registry.version_dir(version.version) / version.model_file
    return build_from_files(model_file, sources), False


def make_resident(arrays: Iterable[np.ndarray]) -> None:
    """Map every page of ``arrays`` into this process now by reading a byte of each page: a
    request reading them later then finds them mapped (from the page cache: workers share
    them) instead of faulting them in one by one."""
    for array in arrays:
        if not array.size or not (array.flags.c_contiguous or array.flags.f_contiguous):
            continue
        raw = array.ravel(order="K").view(np.uint8)  # a view: no copy of a contiguous array
        raw[:: mmap.PAGESIZE].max()
        raw[-1:].max()  # the last page, which the stride may step over


def _probe(state: ServingState) -> dict[str, object]:
    """Check the arrays against the model on a few users (scoring them live, which also
    compiles the live kernels) and run each answer path once, so that the first request
    after a swap costs what every other one does."""
    arrays, model = state.arrays, state.model
    rows = (
        sorted({0, arrays.n_users // 2, arrays.n_users - 1})[:PROBE_USERS] if arrays.n_users else []
    )
    k = min(PROBE_K, arrays.k)
    for row in rows:
        pre_items = arrays.topk_items[row, :k]
        pre_scores = arrays.topk_scores[row, :k][pre_items >= 0]
        dense = model.scores(row)
        _, live_scores = state.live(row, k, np.empty(0, np.int32))
        if (
            live_scores.shape != pre_scores.shape
            or not np.allclose(live_scores, pre_scores, rtol=1e-4, atol=1e-5)
            or not np.allclose(dense[pre_items[pre_items >= 0]], pre_scores, rtol=1e-4, atol=1e-5)
        ):
            raise ServingArraysError(
                f"the precomputed top-{k} of model {state.version.version} disagrees with the "
                f"model's own scores for user index {row}: the arrays were built from another "
                "model or edited",
                hint="register the model again with the deploy task",
            )
    probe_user = None
    if rows:
        sorted_pos = int(np.flatnonzero(arrays.user_rows == rows[0])[0])
        probe_user = arrays.user_ids[sorted_pos].decode("utf-8", "surrogatepass")
        state.recommend(probe_user, k)
        first = arrays.topk_items[rows[0], 0]
        if first >= 0:  # the live path, as a request with exclusions runs it
            state.recommend(probe_user, k, exclude=[arrays.item_ids[first].decode("utf-8")])
    state.recommend("\x00unknown-probe-user", k)
    return {"user_id": probe_user, "users_checked": len(rows), "k": k}


def load_state(registry: ModelRegistry, version: ModelVersion) -> ServingState:
    """A complete, verified and warmed state for ``version`` (raises on anything wrong)."""
    folder = registry.version_dir(version.version)
    model = load_live_model(folder / version.model_file, version.sha256)
    arrays, mapped = _arrays_of(registry, version, model)
    make_resident(getattr(arrays, name) for name in REQUEST_ARRAYS)
    order = np.argsort(arrays.item_ids, kind="stable")
    state = ServingState(
        version=version,
        model=model,
        arrays=arrays,
        item_order=order,
        item_ids_sorted=arrays.item_ids[order],
        id_json=[json.dumps(i.decode("utf-8", "surrogatepass")) for i in arrays.item_ids.tolist()],
        mapped=mapped,
    )
    probe = _probe(state)
    state.probe.update(probe)
    return state


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
    """Keeps the champion loaded; reloads when ``champion.json`` changes.

    Requests read ``state`` (one attribute: no lock, no filesystem). ``current()`` looks at
    the pointer now and loads a new champion; ``start()`` runs it every ``poll_seconds`` on a
    background thread (a registry in an object store is refreshed at most every
    ``refresh_seconds``).

    A champion that fails to load is refused: the model already held keeps answering and
    ``problem`` says which version was refused and why. Each distinct problem is logged once,
    however often the watcher looks; the next change of ``champion.json`` is tried again.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        refresh_seconds: float = 2.0,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.registry = registry
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
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

    @property
    def state(self) -> ServingState | None:
        """The state requests answer from (swapped whole by the watcher)."""
        return self._state

    def start(self) -> None:
        """Look for a new champion every ``poll_seconds`` on a daemon thread until ``stop``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.current()
            except Exception:  # never let the watcher die: the next tick tries again
                LOGGER.exception("the champion watcher failed; retrying")

    def current(self) -> ServingState | None:
        """Look at the champion pointer now; load the champion if it changed."""
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
