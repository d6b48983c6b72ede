"""Read the features task's artifacts into the arrays the models use, checking their schema.

Each reader names the file and the missing or malformed column in its error, so a mismatch
between the features and model stages is fixed at the source instead of debugged downstream.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recomart_pipeline.contract.errors import DataValidationError, SchemaError
from recomart_pipeline.ml.base import Ratings, TrainingData


def _read_columns(path: Path, columns: list[str]) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"{path.name} lacks column(s) {missing} (it has {list(frame.columns)})",
            hint="the features task must write the documented columns",
        )
    for column in columns:
        if frame[column].isna().any():
            raise DataValidationError(
                f"{path.name} has missing values in column '{column}'",
                hint="drop or impute them in the preparation task",
            )
    return frame


def _indices(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = frame[column].to_numpy()
    if not np.issubdtype(values.dtype, np.integer):
        raise SchemaError(f"{path.name} column '{column}' must be integer, got {values.dtype}")
    return values.astype(np.int32)


def read_ratings(path: Path) -> Ratings:
    """``user_idx, item_idx, rating`` parquet (train_ratings / test_ratings)."""
    frame = _read_columns(path, ["user_idx", "item_idx", "rating"])
    return Ratings(
        _indices(frame, "user_idx", path),
        _indices(frame, "item_idx", path),
        frame["rating"].to_numpy(dtype=np.float32),
    )


def read_implicit(path: Path) -> sp.csr_matrix:
    """The ``train_implicit`` confidence matrix as float32 CSR with sorted, merged entries."""
    try:
        matrix = sp.load_npz(path)
    except (ValueError, OSError, KeyError) as exc:
        raise SchemaError(
            f"{path.name} is not a scipy sparse .npz matrix ({exc})",
            hint="the features task must write it with scipy.sparse.save_npz",
        ) from exc
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


def read_interactions(path: Path, shape: tuple[int, int]) -> sp.csr_matrix:
    """Held-out ``user_idx, item_idx`` pairs as a binary ``shape`` CSR matrix."""
    frame = _read_columns(path, ["user_idx", "item_idx"])
    users, items = _indices(frame, "user_idx", path), _indices(frame, "item_idx", path)
    for what, idx, size in (("user", users, shape[0]), ("item", items, shape[1])):
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise DataValidationError(
                f"{path.name} has {what}_idx values up to {idx.max()}, beyond the {size} "
                f"{what}s of the training matrix",
                hint="test and train artifacts must come from the same features run",
            )
    matrix = sp.csr_matrix(
        (np.ones(users.size, np.float32), (users, items)), shape=shape, dtype=np.float32
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def read_index(path: Path, id_column: str, idx_column: str) -> np.ndarray:
    """External ids ordered by their dense index (``ids[idx]``), checking 0..n-1 is complete."""
    frame = _read_columns(path, [id_column, idx_column])
    idx = _indices(frame, idx_column, path)
    if not np.array_equal(np.sort(idx), np.arange(idx.size)):
        raise DataValidationError(
            f"{path.name} column '{idx_column}' must number the rows 0..{idx.size - 1} "
            "exactly once",
            hint="the features task assigns dense indices; do not filter the index tables",
        )
    ids = np.empty(idx.size, dtype=object)
    ids[idx] = frame[id_column].astype(str).to_numpy()
    return ids


def load_training_data(ratings_path: Path, implicit_path: Path) -> TrainingData:
    """TrainingData from ``train_ratings`` and ``train_implicit`` (its shape sets the sizes)."""
    implicit = read_implicit(implicit_path)
    n_users, n_items = implicit.shape
    return TrainingData(n_users, n_items, read_ratings(ratings_path), implicit)
