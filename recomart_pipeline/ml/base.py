"""The one interface every model type implements, and the data it is trained on.

Tasks, the benchmark and serving only ever talk to ``Recommender``: ``fit`` on
``TrainingData``, ``predict`` ratings, ``score_items`` / ``recommend`` for ranking,
``recommend_history`` for users the model was never trained on (scored from a ``History``
of their interactions: "strong generalization", as the ``user_holdout`` protocol evaluates)
and ``to_arrays`` / ``from_arrays`` for persistence. A model's whole state is a handful of named
NumPy arrays (declared in ``state_shapes``), so persistence never needs pickle.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal, Self

import numba
import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel
from threadpoolctl import threadpool_limits

from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.ml._blocks import run_blocks
from recomart_pipeline.ml._topk import top_k_product_rows, top_k_rows, top_k_sparse_rows

EpochRecord = dict[str, float | int | None]
EpochCallback = Callable[[EpochRecord], None]
# What a state array's first dimension must match: one row per user or item, a scalar, the
# offsets of a CSR matrix with a row per user/item (n + 1 entries), or the entries of such a
# matrix (any length; the model's ``_check_state`` checks them against the offsets).
StateShape = Literal["users", "items", "scalar", "user_offsets", "item_offsets", "entries"]

# Users scored per recommend() chunk: enough rows for BLAS to reuse each block of item factors,
# few enough that a chunk's scores stay in the shared cache while top-k reads them back (64
# measured fastest at 25k and 100k items; 16 and 1024 were 1.3-2x slower)...
RECOMMEND_CHUNK_USERS = 64
# ...unless the catalogue is so large that 64 rows of float32 scores exceed this.
RECOMMEND_CHUNK_BYTES = 64 * 1024 * 1024


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
class SparseProduct:
    """Scores given as the product ``left @ right`` of two CSR matrices (row ``r`` of
    ``left`` belongs to the chunk's row ``r``): ranked by ``top_k_product_rows`` without
    the product being built, on every worker thread at once (scipy's product holds the
    GIL). Item-kNN's scores are such a product: the users' items times the similarities."""

    left: sp.csr_matrix
    right: sp.csr_matrix

    def fused(self) -> bool:
        """Both float32, as the kernel sums (other dtypes take scipy's product)."""
        return self.left.dtype == np.float32 and self.right.dtype == np.float32

    def to_csr(self) -> sp.csr_matrix:
        """The product itself (scipy): what the fused kernel ranks, bit for bit."""
        return sp.csr_matrix(self.left @ self.right)


# What ``recommend`` ranks for a batch of rows: dense scores, sparse ones (items not stored
# score exactly 0), or the product that makes sparse ones.
ScoreRows = Callable[[np.ndarray], "np.ndarray | sp.csr_matrix | SparseProduct"]


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
class SeenItems:
    """Items each user must not be recommended, as the CSR arrays the top-k kernels read.

    ``stored`` flags the entries that count: an explicitly stored zero is not an interaction.
    """

    indptr: np.ndarray
    indices: np.ndarray
    stored: np.ndarray

    @classmethod
    def of(cls, exclude: sp.csr_matrix | None, n_users: int) -> SeenItems:
        """The rows of ``exclude`` (no copy of a CSR matrix), or nothing seen at all."""
        if exclude is None:
            return cls(np.zeros(n_users + 1, np.int32), np.empty(0, np.int32), np.empty(0, bool))
        matrix = sp.csr_matrix(exclude)
        return cls(matrix.indptr, matrix.indices, matrix.data != 0)


@dataclass(frozen=True)
class History:
    """Interactions of users the model was not trained on, given at scoring time only.

    ``interactions`` is a ``rows x n_items`` CSR matrix of non-negative confidences on the
    training matrix's scale (the features task weighs events the same way for both); row
    ``r`` is one user. ``ratings``, when given, are the same users' explicit ratings
    (``users`` = rows), which rating models (SVD) fold in from. Nothing here is ever learned:
    a model answers from it and forgets it.
    """

    interactions: sp.csr_matrix
    ratings: Ratings | None = None

    def __post_init__(self) -> None:
        matrix = sp.csr_matrix(self.interactions, dtype=np.float32)
        if matrix.nnz and (matrix.data < 0).any():
            raise DataValidationError("history confidences must be non-negative")
        matrix.sum_duplicates()
        matrix.sort_indices()
        object.__setattr__(self, "interactions", matrix)
        r = self.ratings
        if r is not None and len(r):
            for what, idx, size in (
                ("user", r.users, self.n_rows),
                ("item", r.items, self.n_items),
            ):
                if idx.min() < 0 or idx.max() >= size:
                    raise DataValidationError(
                        f"history rating {what} indices span [{idx.min()}, {idx.max()}] but the "
                        f"history has {size} {what}s",
                        hint="the history ratings and matrix must come from the same features run",
                    )

    @property
    def n_rows(self) -> int:
        return int(self.interactions.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.interactions.shape[1])

    def rows(self, rows: np.ndarray) -> sp.csr_matrix:
        """The interactions of ``rows`` (a fresh CSR matrix, one row per entry)."""
        selected: sp.csr_matrix = self.interactions[rows]
        return selected

    @cached_property
    def ratings_by_row(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ratings grouped by row as CSR arrays ``(indptr, items, values)`` (every
        rating kept, in the given order within a row), made once per history."""
        none = np.empty(0, np.int32)
        r = self.ratings if self.ratings is not None else Ratings(none, none, none)
        order = np.argsort(r.users, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(r.users, minlength=self.n_rows))])
        return indptr.astype(np.int64), r.items[order], r.values[order]


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
    # Set when the final model was refitted after early stopping: {"epochs", "n_train",
    # "train_rmse"} of the refit on every rating (the history is the validation run).
    refit: dict[str, Any] | None = None

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
            "refit": self.refit,
        }


class Recommender(ABC):
    """Base class of every model type; subclasses set the class attributes and the hooks.

    ``predicts_ratings`` is False for models whose ``predict`` returns a preference score
    rather than a rating (implicit ALS): RMSE/MAE are not meaningful for them.
    ``requires_ratings`` models cannot learn anything without explicit ratings (SVD, the bias
    model); ``skip_reason`` is how the training task asks before fitting. ``serial_fit``
    models fit on one core whatever the task's CPU share (SGD's updates depend on each
    other), so the training task runs their validation fits beside the other candidates'.
    """

    model_type: ClassVar[str]
    short_name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    state_shapes: ClassVar[dict[str, StateShape]]
    predicts_ratings: ClassVar[bool] = True
    requires_ratings: ClassVar[bool] = False
    serial_fit: ClassVar[bool] = False

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None) -> None:
        if isinstance(params, self.Params):
            self.params = params
        else:
            self.params = self.Params.model_validate(dict(params or {}))
        self.n_users = 0
        self.n_items = 0
        self._state: dict[str, np.ndarray] = {}
        self._transposed: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # -- training --------------------------------------------------------------------------
    def skip_reason(self, train: TrainingData) -> str | None:
        """Why this model does not apply to ``train`` (None: it can be fitted). Training skips
        such a candidate instead of failing the run."""
        if self.requires_ratings and len(train.ratings) == 0:
            return f"{self.model_type} needs explicit ratings and the training data has none"
        if not self.requires_ratings and train.interactions().nnz == 0:
            return f"{self.model_type} needs interactions and the training data has none"
        return None

    def fit(self, train: TrainingData, *, on_epoch: EpochCallback | None = None) -> FitReport:
        """Train on ``train`` (replacing any previous state); ``on_epoch`` sees each epoch.
        Data the model cannot learn from (``skip_reason``) is a DataValidationError."""
        reason = self.skip_reason(train)
        if reason is not None:
            raise DataValidationError(
                reason,
                hint="train a model that fits this data (als or popularity learn from "
                "interactions alone)",
            )
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

    def _ranking_scores(self, users: np.ndarray) -> np.ndarray | sp.csr_matrix | SparseProduct:
        """The scores ``recommend`` ranks: ``_score_items``'s, or (a model whose scores are
        mostly exact zeros) a sparse matrix of them or the product that makes them, ranked
        without densifying."""
        return self._score_items(users)

    def _transposed_state(self, name: str) -> np.ndarray:
        """``state[name].T`` as a C-contiguous array, made once per fitted state: BLAS scores
        a chunk ~25% faster from it than from the strided ``.T`` view (same results)."""
        source = self._state[name]
        cached = self._transposed.get(name)
        if cached is None or cached[0] is not source:  # refit or reloaded since
            cached = (source, np.ascontiguousarray(source.T))
            self._transposed[name] = cached
        return cached[1]

    def default_chunk_size(self) -> int:
        """Users scored together: ``RECOMMEND_CHUNK_USERS``, fewer for huge catalogues."""
        return max(1, min(RECOMMEND_CHUNK_USERS, RECOMMEND_CHUNK_BYTES // max(1, self.n_items * 4)))

    def recommend(
        self,
        user_idx: Any,
        k: int,
        exclude: sp.csr_matrix | None = None,
        *,
        chunk_size: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per user, best first, skipping items stored in ``exclude``'s row.

        Returns ``(items int32, scores float32)`` of shape ``(len(user_idx), k)``; slots a user
        cannot fill (fewer than ``k`` unseen items) hold item ``-1`` and score NaN. Ties go to
        the lower item index, so the answer does not depend on ``chunk_size``.
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
        seen = SeenItems.of(exclude, self.n_users)
        self._recommend_into(
            users,
            min(k, self.n_items),
            seen,
            items_out,
            scores_out,
            chunk_size or self.default_chunk_size(),
            self._ranking_scores,
        )
        return items_out, scores_out

    def recommend_history(
        self,
        history: History,
        k: int,
        rows: Any = None,
        *,
        chunk_size: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for users the model was not trained on, from their ``history``.

        ``rows`` selects the history's rows to answer for (default: all). The model scores
        each row from its history alone (item-based models directly, factor models by folding
        in a user factor, baselines by their item scores) and never learns from it; the
        history's own items are not recommended. Same outputs as ``recommend``.
        """
        self._require_fitted()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if history.n_items != self.n_items:
            raise ValueError(
                f"the history has {history.n_items} item columns, but the model knows "
                f"{self.n_items} items: index it with the training item index"
            )
        selected = np.arange(history.n_rows) if rows is None else rows
        rows = _index_array(selected, history.n_rows, "history row")
        items_out = np.full((rows.size, k), -1, dtype=np.int32)
        scores_out = np.full((rows.size, k), np.nan, dtype=np.float32)
        self._recommend_into(
            rows,
            min(k, self.n_items),
            SeenItems.of(history.interactions, history.n_rows),
            items_out,
            scores_out,
            chunk_size or self.default_chunk_size(),
            lambda batch: self._score_history(history, batch),
        )
        return items_out, scores_out

    def score_history(self, history: History, rows: Any = None) -> np.ndarray:
        """Dense ``len(rows) x n_items`` float32 scores of history rows (see
        ``recommend_history``); the history's items are not masked here."""
        self._require_fitted()
        selected = np.arange(history.n_rows) if rows is None else rows
        return self._score_history(history, _index_array(selected, history.n_rows, "history row"))

    def _score_history(self, history: History, rows: np.ndarray) -> np.ndarray:
        """Scores of ``history``'s ``rows`` for every item; each model type overrides this."""
        raise NotImplementedError(
            f"{self.model_type} cannot score users it was not trained on (no _score_history)"
        )

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
        """Fill the pre-set outputs with each row's top ``k``; models with a cheaper exact
        ranking than dense scores (popularity) override this. ``users`` are the rows of
        ``seen`` and what ``score`` takes: model users (``_score_items``, the default), or
        history rows.

        Dense scores are computed ``chunk_size`` users at a time, so memory stays bounded by
        the chunk. Chunks run on up to ``numba.get_num_threads()`` threads (the runtime's CPU
        cap), each with a single-threaded BLAS: scoring and top-k of one chunk then stay on
        one core while its scores are in cache, instead of a multi-threaded BLAS and a
        multi-threaded top-k taking turns on the same cores.

        ``score`` may return a scipy sparse matrix (items not stored score exactly 0): it is
        ranked without densifying (``top_k_sparse_rows``), with the same outputs; or a
        ``SparseProduct``, ranked without being built (``top_k_product_rows``), the same.
        """

        score_rows = score or self._score_items

        def run_chunk(start: int) -> None:
            batch = users[start : start + chunk_size]
            stop = start + batch.size
            raw = score_rows(batch)
            # what the kernels take after the scores: whose rows, what they saw, the outputs
            rest = (batch, seen.indptr, seen.indices, seen.stored, k)
            outputs = (items_out[start:stop], scores_out[start:stop])
            if isinstance(raw, SparseProduct) and raw.fused():
                left, right = raw.left, raw.right
                top_k_product_rows(
                    left.indptr,
                    left.indices,
                    left.data,
                    right.indptr,
                    right.indices,
                    right.data,
                    right.shape[1],
                    *rest,
                    *outputs,
                )
                return
            if isinstance(raw, SparseProduct):
                raw = raw.to_csr()
            if sp.issparse(raw):  # sparse scores: every item not stored scores exactly 0
                rows = sp.csr_matrix(raw)
                data = np.asarray(rows.data, dtype=np.float32)
                top_k_sparse_rows(rows.indptr, rows.indices, data, rows.shape[1], *rest, *outputs)
                return
            top_k_rows(np.ascontiguousarray(raw, dtype=np.float32), *rest, *outputs)

        starts = range(0, users.size, chunk_size)
        if min(len(starts), numba.get_num_threads()) <= 1:  # one thread: BLAS may use more
            run_blocks(run_chunk, starts, name="recommend")
            return
        with threadpool_limits(limits=1, user_api="blas"):
            run_blocks(run_chunk, starts, name="recommend")

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
        expected = {
            "users": n_users,
            "items": n_items,
            "user_offsets": n_users + 1,
            "item_offsets": n_items + 1,
        }
        state: dict[str, np.ndarray] = {}
        for name, kind in cls.state_shapes.items():
            array = np.asarray(arrays[name])
            if kind == "scalar" and array.ndim != 0:
                raise ValueError(f"state array '{name}' must be a scalar, got shape {array.shape}")
            if kind == "entries" and array.ndim != 1:
                raise ValueError(f"state array '{name}' must be 1-d, got shape {array.shape}")
            if kind in expected and (array.ndim == 0 or array.shape[0] != expected[kind]):
                raise ValueError(
                    f"state array '{name}' has shape {array.shape}, expected {expected[kind]} "
                    f"rows ({kind})"
                )
            state[name] = array
        model._check_state(state, n_users, n_items)
        model.n_users, model.n_items = n_users, n_items
        model._state = state
        return model

    def _check_state(self, state: dict[str, np.ndarray], n_users: int, n_items: int) -> None:
        """Refuse loaded state the shapes cannot vouch for (a sparse matrix's offsets and
        indices): a model file is untrusted, and the kernels index without bounds checks.
        Raise ValueError naming the array. Dense state needs nothing beyond the shapes."""
        return
