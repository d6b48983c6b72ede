"""The one interface every model type implements, and the data it is trained on.

Tasks, the benchmark and serving only ever talk to ``Recommender``: ``fit`` on
``TrainingData``, ``predict`` ratings, ``score_items`` / ``recommend`` for ranking and
``to_arrays`` / ``from_arrays`` for persistence. A model's whole state is a handful of named
NumPy arrays (declared in ``state_shapes``), so persistence never needs pickle.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel

from recomart_pipeline.ml._topk import top_k_rows
from recomart_pipeline.runtime.errors import DataValidationError

EpochRecord = dict[str, float | int | None]
EpochCallback = Callable[[EpochRecord], None]
StateShape = Literal["users", "items", "scalar"]

# The float32 scores of one recommend() chunk stay under this budget.
RECOMMEND_CHUNK_BYTES = 256 * 1024 * 1024


def _index_array(values: Any, size: int, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} indices must be a 1-d array, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} indices must be integers, got dtype {array.dtype}")
    array = array.astype(np.int32, copy=False)
    if array.size and (array.min() < 0 or array.max() >= size):
        raise IndexError(
            f"{what} index out of range: values span [{array.min()}, {array.max()}] but the "
            f"model knows {size} {what}s (indices 0..{size - 1})"
        )
    return array


@dataclass(frozen=True)
class Ratings:
    """Explicit rating events as parallel arrays (user index, item index, rating)."""

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", np.asarray(self.users, dtype=np.int32))
        object.__setattr__(self, "items", np.asarray(self.items, dtype=np.int32))
        object.__setattr__(self, "values", np.asarray(self.values, dtype=np.float32))
        lengths = {self.users.shape, self.items.shape, self.values.shape}
        if len(lengths) != 1 or self.users.ndim != 1:
            raise DataValidationError(
                f"rating arrays must be 1-d and of equal length, got users {self.users.shape}, "
                f"items {self.items.shape}, ratings {self.values.shape}"
            )
        if self.values.size and not np.isfinite(self.values).all():
            raise DataValidationError(
                "ratings contain NaN or infinite values",
                hint="drop or impute missing ratings in the preparation task",
            )

    def __len__(self) -> int:
        return int(self.users.size)

    def subset(self, rows: np.ndarray) -> Ratings:
        return Ratings(self.users[rows], self.items[rows], self.values[rows])


@dataclass(frozen=True)
class TrainingData:
    """What every model trains on: the index space, explicit ratings and implicit confidences.

    ``implicit`` is an ``n_users x n_items`` CSR matrix of non-negative confidences; models that
    need it fall back to a binary matrix built from the ratings when it is absent.
    """

    n_users: int
    n_items: int
    ratings: Ratings
    implicit: sp.csr_matrix | None = None

    def __post_init__(self) -> None:
        # numpy scalars (e.g. int16 category codes + 1) would overflow in size arithmetic
        object.__setattr__(self, "n_users", int(self.n_users))
        object.__setattr__(self, "n_items", int(self.n_items))
        if self.n_users <= 0 or self.n_items <= 0:
            raise DataValidationError(
                f"training data needs at least one user and one item "
                f"(got {self.n_users} users, {self.n_items} items)"
            )
        r = self.ratings
        for what, idx, size in (("user", r.users, self.n_users), ("item", r.items, self.n_items)):
            if idx.size and (idx.min() < 0 or idx.max() >= size):
                raise DataValidationError(
                    f"rating {what} indices span [{idx.min()}, {idx.max()}] but there are only "
                    f"{size} {what}s",
                    hint="train_ratings and the index tables must come from the same features run",
                )
        if self.implicit is not None:
            matrix = sp.csr_matrix(self.implicit, dtype=np.float32)
            if matrix.shape != (self.n_users, self.n_items):
                raise DataValidationError(
                    f"implicit matrix has shape {matrix.shape}, expected "
                    f"({self.n_users}, {self.n_items})",
                    hint="train_implicit and the index tables must come from the same features run",
                )
            if matrix.nnz and (matrix.data < 0).any():
                raise DataValidationError("implicit confidences must be non-negative")
            matrix.sum_duplicates()
            object.__setattr__(self, "implicit", matrix)

    def interactions(self) -> sp.csr_matrix:
        """The implicit confidence matrix, or a binary one derived from the ratings."""
        if self.implicit is not None:
            return self.implicit
        r = self.ratings
        ones = np.ones(len(r), dtype=np.float32)
        matrix = sp.csr_matrix((ones, (r.users, r.items)), shape=(self.n_users, self.n_items))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix


@dataclass
class FitReport:
    """How a fit went: wall time, per-epoch history and early-stopping outcome."""

    fit_seconds: float
    n_train: int
    n_validation: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    def final(self, key: str) -> float | None:
        """The last non-missing value of ``key`` in the history (e.g. ``val_rmse``)."""
        for record in reversed(self.history):
            value = record.get(key)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                return float(value)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fit_seconds": self.fit_seconds,
            "n_train": self.n_train,
            "n_validation": self.n_validation,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
        }


class Recommender(ABC):
    """Base class of every model type; subclasses set the class attributes and the hooks.

    ``predicts_ratings`` is False for models whose ``predict`` returns a preference score
    rather than a rating (implicit ALS): RMSE/MAE are not meaningful for them.
    """

    model_type: ClassVar[str]
    short_name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    state_shapes: ClassVar[dict[str, StateShape]]
    predicts_ratings: ClassVar[bool] = True

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None) -> None:
        if isinstance(params, self.Params):
            self.params = params
        else:
            self.params = self.Params.model_validate(dict(params or {}))
        self.n_users = 0
        self.n_items = 0
        self._state: dict[str, np.ndarray] = {}

    # -- training --------------------------------------------------------------------------
    def fit(self, train: TrainingData, *, on_epoch: EpochCallback | None = None) -> FitReport:
        """Train on ``train`` (replacing any previous state); ``on_epoch`` sees each epoch."""
        started = time.perf_counter()
        state, report = self._fit(train, on_epoch or (lambda record: None))
        report.fit_seconds = time.perf_counter() - started
        self.n_users, self.n_items = train.n_users, train.n_items
        self._state = state
        return report

    @abstractmethod
    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        """Return the fitted state arrays and a report (its fit_seconds is filled in by fit)."""

    # -- inference -------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return bool(self._state)

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or load a model")

    def predict(self, user_idx: Any, item_idx: Any) -> np.ndarray:
        """Rating estimates (float32) for the (user, item) pairs."""
        self._require_fitted()
        users = _index_array(user_idx, self.n_users, "user")
        items = _index_array(item_idx, self.n_items, "item")
        if users.shape != items.shape:
            raise ValueError(f"got {users.size} user indices but {items.size} item indices")
        return self._predict(users, items)

    @abstractmethod
    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray: ...

    def score_items(self, user_idx: Any) -> np.ndarray:
        """Dense ``len(user_idx) x n_items`` float32 ranking scores (a fresh, writable array)."""
        self._require_fitted()
        return self._score_items(_index_array(user_idx, self.n_users, "user"))

    @abstractmethod
    def _score_items(self, users: np.ndarray) -> np.ndarray: ...

    def default_chunk_size(self) -> int:
        """Users per chunk so one chunk's dense scores fit the memory budget."""
        return max(1, RECOMMEND_CHUNK_BYTES // max(1, self.n_items * 4))

    def recommend(
        self,
        user_idx: Any,
        k: int,
        exclude: sp.csr_matrix | None = None,
        *,
        chunk_size: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per user, best first, skipping items stored in ``exclude``'s row.

        Scored ``chunk_size`` users at a time so 100k users x 50k items never materialise at
        once. Returns ``(items int32, scores float32)`` of shape ``(len(user_idx), k)``; slots a
        user cannot fill (fewer than ``k`` unseen items) hold item ``-1`` and score NaN.
        """
        self._require_fitted()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        users = _index_array(user_idx, self.n_users, "user")
        if exclude is not None and exclude.shape != (self.n_users, self.n_items):
            raise ValueError(
                f"exclude matrix has shape {exclude.shape}, expected "
                f"({self.n_users}, {self.n_items}) to match the model"
            )
        items_out = np.full((users.size, k), -1, dtype=np.int32)
        scores_out = np.full((users.size, k), np.nan, dtype=np.float32)
        step = chunk_size or self.default_chunk_size()
        for start in range(0, users.size, step):
            batch = users[start : start + step]
            scores = self._score_items(batch)
            if exclude is not None:
                seen = exclude[batch]
                rows = np.repeat(np.arange(batch.size), np.diff(seen.indptr))
                stored = seen.data != 0
                scores[rows[stored], seen.indices[stored]] = -np.inf
            stop = start + batch.size
            top_k_rows(scores, min(k, self.n_items), items_out[start:stop], scores_out[start:stop])
        return items_out, scores_out

    # -- persistence -----------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as named arrays (what persistence writes)."""
        self._require_fitted()
        return {name: np.asarray(self._state[name]) for name in self.state_shapes}

    @classmethod
    def from_arrays(
        cls,
        params: BaseModel | Mapping[str, Any] | None,
        n_users: int,
        n_items: int,
        arrays: Mapping[str, np.ndarray],
    ) -> Self:
        """Rebuild a fitted model, checking every state array is present and shaped right."""
        model = cls(params)
        missing = sorted(set(cls.state_shapes) - set(arrays))
        if missing:
            raise ValueError(f"{cls.model_type} model state is missing arrays: {missing}")
        expected = {"users": n_users, "items": n_items}
        state: dict[str, np.ndarray] = {}
        for name, kind in cls.state_shapes.items():
            array = np.asarray(arrays[name])
            if kind == "scalar" and array.ndim != 0:
                raise ValueError(f"state array '{name}' must be a scalar, got shape {array.shape}")
            if kind != "scalar" and (array.ndim == 0 or array.shape[0] != expected[kind]):
                raise ValueError(
                    f"state array '{name}' has shape {array.shape}, expected {expected[kind]} "
                    f"rows ({kind})"
                )
            state[name] = array
        model.n_users, model.n_items = n_users, n_items
        model._state = state
        return model
