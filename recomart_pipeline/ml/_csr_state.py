"""Sparse matrices as model state: three named arrays (offsets, indices, values) and a check.

Item-based models (EASE, item-kNN) score a user from the items the user interacted with, so
their state holds the training interactions and, for item-kNN, a sparse item x item
similarity. Persistence only knows named NumPy arrays, so each matrix is stored as its CSR
arrays under ``<prefix>_indptr`` / ``<prefix>_indices`` / ``<prefix>_data``; ``check_csr``
is what makes loading such arrays from an untrusted file safe (scipy and the scoring code
trust the offsets and indices without bounds checks).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recomart_pipeline.ml.base import StateShape


def csr_shapes(prefix: str, rows: StateShape) -> dict[str, StateShape]:
    """``state_shapes`` entries of a CSR matrix with one row per user or item."""
    return {
        f"{prefix}_indptr": rows,
        f"{prefix}_indices": "entries",
        f"{prefix}_data": "entries",
    }


def csr_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """The state arrays of ``matrix`` (int32 offsets and indices, float32 values)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sum_duplicates()
    matrix.sort_indices()
    return {
        f"{prefix}_indptr": matrix.indptr.astype(np.int32),
        f"{prefix}_indices": matrix.indices.astype(np.int32),
        f"{prefix}_data": matrix.data.astype(np.float32),
    }


def check_csr(state: dict[str, np.ndarray], prefix: str, n_columns: int) -> None:
    """ValueError naming the array unless the CSR arrays describe a valid matrix."""
    indptr = state[f"{prefix}_indptr"]
    indices = state[f"{prefix}_indices"]
    data = state[f"{prefix}_data"]
    for name, array in ((f"{prefix}_indptr", indptr), (f"{prefix}_indices", indices)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"state array '{name}' must be integer, got {array.dtype}")
    if not np.issubdtype(data.dtype, np.floating):
        raise ValueError(f"state array '{prefix}_data' must be float, got {data.dtype}")
    if indices.shape != data.shape:
        raise ValueError(
            f"state arrays '{prefix}_indices' and '{prefix}_data' differ in length "
            f"({indices.size} vs {data.size})"
        )
    if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
        raise ValueError(
            f"state array '{prefix}_indptr' is not a valid offset array (it must rise from 0 "
            f"to {indices.size})"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= n_columns):
        raise ValueError(
            f"state array '{prefix}_indices' holds column indices outside 0..{n_columns - 1}"
        )
    if data.size and not np.isfinite(data).all():
        raise ValueError(f"state array '{prefix}_data' holds NaN or infinite values")


def csr_from_state(
    state: dict[str, np.ndarray], prefix: str, shape: tuple[int, int]
) -> sp.csr_matrix:
    """The matrix stored under ``prefix`` (no copy of the arrays)."""
    return sp.csr_matrix(
        (state[f"{prefix}_data"], state[f"{prefix}_indices"], state[f"{prefix}_indptr"]),
        shape=shape,
    )
