"""Live scoring of one user, for the requests the precomputed arrays cannot answer.

A request with ``exclude`` or a ``k`` above the precomputed K scores one user. Doing that
with the model classes would load numba, llvmlite and scipy into every worker (about 70 MiB
before any model) and copy the model's state into each worker's private memory (100 MiB for
an EASE model of 5,000 items): more than the arrays the worker serves from. So for the
built-in model types the service scores one user with NumPy alone, over the model file's
arrays **memory-mapped** from the registry (``np.savez`` stores its members uncompressed, so
each one is a plain ``.npy`` inside the zip): workers share those pages, and a request
touches only the rows it reads (the user's factors, the item rows of their history).

``SCORERS`` is the single-user twin of each model type's ``_score_items``, with the same
operations in the same order (a two-row product where the batch used BLAS gemm, the same
sequential accumulation as scipy's sparse products), so live answers equal the batch answers
the arrays hold; every load checks that on probe users (``state._probe``) and the tests check
it on every user of every model type. Ranking is a stable sort: best score first, ties to
the lower item, non-finite scores never selected (as ``ml._topk``).

A model type without a scorer here, or a file this reader does not accept (not an npz, a
compressed or object member, a hash that does not match the registry's record), goes to the
full loader (``ml.persistence.load_model``, imported only then), which serves it the way the
batch does or refuses it with its own error.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.deployment.serving_arrays import release_pages

if TYPE_CHECKING:
    from recomart_pipeline.ml.base import Recommender

HEADER_KEY = "__header__"  # as ml.persistence writes it
FORMAT_NAME = "recomart-model"
FORMAT_VERSIONS = frozenset({1})
# item_factors.T, C-contiguous, as the model classes score from it (BLAS rounds a product the
# same way only for the same memory layout); the one copy a worker makes (n_items x factors)
TRANSPOSED = "item_factors.T"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's structFileHeader

State = Mapping[str, np.ndarray]
Scorer = Callable[[State, int, int], np.ndarray]


class LiveModel(Protocol):
    """What serving needs of a model: its sizes and one user's ranked items."""

    @property
    def model_type(self) -> str: ...

    @property
    def n_users(self) -> int: ...

    @property
    def n_items(self) -> int: ...

    @property
    def mapped(self) -> bool:
        """State memory-mapped from the registry (False: loaded by the model class)."""
        ...

    def scores(self, row: int) -> np.ndarray: ...

    def top_k(self, row: int, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _two(row: int) -> np.ndarray:
    # the user twice: numpy hands a single row to BLAS gemv, whose rounding differs from the
    # gemm that ranked the batch; two rows keep live scores bit-identical to it
    return np.array([row, row], np.int32)


def _factors(state: State, row: int, n_items: int) -> np.ndarray:
    scores: np.ndarray = state["user_factors"][_two(row)] @ state[TRANSPOSED]
    return scores[0]


def _svd(state: State, row: int, n_items: int) -> np.ndarray:
    users = _two(row)
    scores: np.ndarray = state["user_factors"][users] @ state[TRANSPOSED]
    scores += state["item_bias"]
    scores += (state["global_mean"] + state["user_bias"][users])[:, None]
    return scores[0]


def _bias(state: State, row: int, n_items: int) -> np.ndarray:
    users = _two(row)
    scores: np.ndarray = (state["global_mean"] + state["user_bias"][users])[:, None] + state[
        "item_bias"
    ][None, :]
    return scores[0]


def _popularity(state: State, row: int, n_items: int) -> np.ndarray:
    return state["item_scores"]


def _user_items(state: State, row: int) -> tuple[np.ndarray, np.ndarray]:
    start, end = int(state["user_items_indptr"][row]), int(state["user_items_indptr"][row + 1])
    return state["user_items_indices"][start:end], state["user_items_data"][start:end]


def _ease(state: State, row: int, n_items: int) -> np.ndarray:
    """``X[u] @ B`` as scipy's csr-times-dense computes it: row by row, in stored order."""
    weights = state["item_weights"]
    columns, values = _user_items(state, row)
    scores = np.zeros(n_items, np.result_type(values.dtype, weights.dtype))
    for column, value in zip(columns.tolist(), values, strict=True):
        scores += value * weights[column]
    return scores


def _item_knn(state: State, row: int, n_items: int) -> np.ndarray:
    """``X[u] @ S`` as scipy's csr-times-csr computes it, densified."""
    indptr, indices, data = (
        state["similarity_indptr"],
        state["similarity_indices"],
        state["similarity_data"],
    )
    columns, values = _user_items(state, row)
    scores = np.zeros(n_items, np.result_type(values.dtype, data.dtype))
    for column, value in zip(columns.tolist(), values, strict=True):
        start, end = int(indptr[column]), int(indptr[column + 1])
        np.add.at(scores, indices[start:end], value * data[start:end])
    return scores


# model type -> (the state arrays it reads, its single-user scorer)
SCORERS: dict[str, tuple[tuple[str, ...], Scorer]] = {
    "als": (("user_factors", "item_factors"), _factors),
    "collaborative_filtering_svd": (
        ("user_factors", "item_factors", "user_bias", "item_bias", "global_mean"),
        _svd,
    ),
    "baseline_bias": (("user_bias", "item_bias", "global_mean"), _bias),
    "popularity": (("item_scores",), _popularity),
    "ease": (("item_weights", "user_items_indptr", "user_items_indices", "user_items_data"), _ease),
    "item_knn": (
        (
            "similarity_indptr",
            "similarity_indices",
            "similarity_data",
            "user_items_indptr",
            "user_items_indices",
            "user_items_data",
        ),
        _item_knn,
    ),
}


def rank(scores: np.ndarray, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best finite scores outside ``excluded``: best first, ties to the lower item
    (as ``ml._topk.top_k_rows``); fewer when fewer qualify."""
    candidate = np.isfinite(scores)
    candidate[excluded] = False
    items = np.flatnonzero(candidate)
    values = scores[items]
    if items.size > 4 * k:  # keep everything tied with the k-th best, then sort only those
        threshold = np.partition(values, items.size - k)[items.size - k]
        keep = values >= threshold
        items, values = items[keep], values[keep]
    order = np.argsort(-values, kind="stable")[:k]
    return items[order].astype(np.int32), values[order].astype(np.float32)


def _member_array(handle: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray | None:
    """The ``.npy`` member ``info`` mapped read-only from ``path`` (None: not mappable)."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    with path.open("rb") as raw:
        raw.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
        if fields[0] != b"PK\x03\x04":
            return None
        raw.seek(fields[10] + fields[11], 1)  # the name and the extra field
        end = raw.tell() + info.file_size  # where the member's bytes end
        version = np.lib.format.read_magic(raw)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(raw)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(raw)
        else:
            return None
        offset = raw.tell()
    if dtype.hasobject:
        return None
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset + size > end:
        return None
    if size == 0:
        return np.empty(shape, dtype, order="F" if fortran else "C")
    mapped = np.memmap(path, dtype, "r", offset, shape, "F" if fortran else "C")
    return mapped.view(np.ndarray)  # a plain ndarray over the mapping (cheaper indexing)


def map_model_file(path: Path) -> tuple[dict[str, object], dict[str, np.ndarray]] | None:
    """The header and state arrays of an npz model file, the arrays memory-mapped read-only;
    None when the file is not one this reader maps (the full loader then decides)."""
    try:
        with path.open("rb") as raw:
            if raw.read(4) != b"PK\x03\x04":
                return None
        arrays: dict[str, np.ndarray] = {}
        with zipfile.ZipFile(path) as handle:
            for info in handle.infolist():
                if not info.filename.endswith(".npy"):
                    return None
                array = _member_array(handle, info, path)
                if array is None:
                    return None
                arrays[info.filename.removesuffix(".npy")] = array
        header = json.loads(arrays.pop(HEADER_KEY).tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, struct.error):
        return None
    return (header, arrays) if isinstance(header, dict) else None


@dataclass(frozen=True)
class MappedModel:
    """A built-in model type scored by NumPy over its memory-mapped state."""

    model_type: str
    n_users: int
    n_items: int
    state: dict[str, np.ndarray]
    scorer: Scorer
    mapped: bool = True

    def scores(self, row: int) -> np.ndarray:
        return np.asarray(self.scorer(self.state, row, self.n_items), np.float32)

    def top_k(self, row: int, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return rank(self.scores(row), k, excluded)


@dataclass(frozen=True)
class ClassModel:
    """Any other model: the model class's own ``recommend`` (numba kernels, private state)."""

    model: Recommender
    mapped: bool = False

    @property
    def model_type(self) -> str:
        return self.model.model_type

    @property
    def n_users(self) -> int:
        return self.model.n_users

    @property
    def n_items(self) -> int:
        return self.model.n_items

    def scores(self, row: int) -> np.ndarray:
        return self.model.score_items(np.array([row], np.int32))[0]

    def top_k(self, row: int, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import scipy.sparse as sp

        model = self.model
        columns = excluded.astype(np.int32)
        indptr = np.zeros(model.n_users + 1, np.int64)
        indptr[row + 1 :] = columns.size
        exclude = sp.csr_matrix(
            (np.ones(columns.size, np.float32), columns, indptr),
            shape=(model.n_users, model.n_items),
        )
        items, scores = model.recommend(_two(row), k, exclude)
        filled = items[0] >= 0
        return items[0][filled], scores[0][filled]


def _mapped(path: Path, expected_sha256: str) -> MappedModel | None:
    """The model at ``path`` memory-mapped, if it is a built-in type whose file and arrays
    this reader accepts in full; None otherwise."""
    if sha256_file(path) != expected_sha256.lower():
        return None
    found = map_model_file(path)
    if found is None:
        return None
    header, state = found
    entry = SCORERS.get(str(header.get("model_type")))
    n_users, n_items = header.get("n_users"), header.get("n_items")
    if (
        entry is None
        or header.get("format") != FORMAT_NAME
        or header.get("format_version") not in FORMAT_VERSIONS
        or not isinstance(n_users, int)
        or not isinstance(n_items, int)
    ):
        return None
    names, scorer = entry
    if not set(names) <= set(state) or not _shapes_fit(state, n_users, n_items):
        return None
    if "item_factors" in state:
        state[TRANSPOSED] = np.ascontiguousarray(state["item_factors"].T)
    release_pages(state.values())  # checking read whole arrays; a request reads a few rows
    return MappedModel(str(header["model_type"]), n_users, n_items, state, scorer)


def _shapes_fit(state: dict[str, np.ndarray], n_users: int, n_items: int) -> bool:
    """Every array a scorer indexes has the rows it indexes, and every CSR index is in range:
    a request must never read outside an array."""
    rows = {"user_factors": n_users, "user_bias": n_users, "item_factors": n_items}
    rows |= {"item_bias": n_items, "item_scores": n_items}
    for name, want in rows.items():
        if name in state and (state[name].ndim < 1 or state[name].shape[0] != want):
            return False
    if "item_weights" in state and state["item_weights"].shape != (n_items, n_items):
        return False
    if "user_factors" in state and (
        state["user_factors"].ndim != 2
        or state["item_factors"].ndim != 2
        or state["user_factors"].shape[1] != state["item_factors"].shape[1]
    ):
        return False
    for prefix, n_rows in (("user_items", n_users), ("similarity", n_items)):
        if f"{prefix}_indptr" not in state:
            continue
        indptr, indices = state[f"{prefix}_indptr"], state[f"{prefix}_indices"]
        data = state[f"{prefix}_data"]
        if (
            indptr.shape != (n_rows + 1,)
            or indices.shape != data.shape
            or int(indptr[0]) != 0
            or int(indptr[-1]) != indices.shape[0]
            or bool(np.any(np.diff(indptr) < 0))
            or (indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n_items))
        ):
            return False
    return True


def load_live_model(path: Path, expected_sha256: str) -> LiveModel:
    """The model of a registry version for live scoring: memory-mapped and scored by NumPy
    when it is a built-in type, else loaded by its class (which also refuses a bad file)."""
    mapped = _mapped(path, expected_sha256)
    if mapped is not None:
        return mapped
    from recomart_pipeline.ml.persistence import load_model

    return ClassModel(load_model(path, expected_sha256=expected_sha256, allow_pickle=False))
