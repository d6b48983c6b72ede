"""The arrays a model version is served from: every known user's top-K, precomputed.

A recommendation request is a lookup, not a scoring job: the batch code path that ranks the
whole catalogue is built for millions of users at once, and for one user it costs hundreds of
milliseconds of thread-pool and BLAS set-up. So a deployed version carries, next to its model,
the answers themselves as plain ``.npy`` arrays that the service memory-maps (several worker
processes then share one copy in the page cache):

=====================  =========================  ==============================================
file                   dtype, shape               holds
=====================  =========================  ==============================================
``topk_items.npy``     int32 ``[n_users, K]``     each user's best K unseen items, best first
                                                  (item index; -1 where fewer than K exist)
``topk_scores.npy``    float32 ``[n_users, K]``   their scores (NaN in unfilled slots)
``popular_items.npy``  int32 ``[n_items]``        every item, most interacted first (unknown
                                                  users)
``user_ids.npy``       bytes ``[n_users]``        the user ids, UTF-8, sorted (binary search)
``user_rows.npy``      int32 ``[n_users]``        the user index of each sorted id
``item_ids.npy``       bytes ``[n_items]``        the item ids by item index, UTF-8
``seen_indptr.npy``    int64 ``[n_users + 1]``    each user's training items (CSR rows), which
``seen_indices.npy``   int32 ``[nnz]``            live scoring excludes
=====================  =========================  ==============================================

They are computed by the model's own ``recommend`` with the training matrix as exclusions,
so a precomputed answer is exactly what live scoring of that user returns (ties go to the
lower item index in both). Loading never unpickles (``allow_pickle=False``), and every array
is checked for dtype, shape and index range before a request can index with it: the files
live in the registry folder, which anyone with write access can edit.
"""

from __future__ import annotations

import mmap
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recomart_pipeline.contract.errors import TaskError

if TYPE_CHECKING:  # building imports the model classes; the service only loads (numpy)
    import scipy.sparse as sp

    from recomart_pipeline.ml.base import Recommender

# The k the service answers from the arrays; requests for more are scored live.
DEFAULT_TOP_K = 100
# Users ranked per recommend() call while building: bounds the dense scores in memory.
BUILD_BATCH_USERS = 65_536

ARRAY_FILES = (
    "topk_items.npy",
    "topk_scores.npy",
    "popular_items.npy",
    "user_ids.npy",
    "user_rows.npy",
    "item_ids.npy",
    "seen_indptr.npy",
    "seen_indices.npy",
)
# What the arrays are built from (the files the deploy task registers next to the model).
SOURCE_FILES = ("user_index.parquet", "item_index.parquet", "train_implicit.npz")


class ServingArraysError(TaskError):
    error_class = "serving_arrays_invalid"


def release_pages(arrays: Iterable[np.ndarray]) -> None:
    """Drop this process's resident pages of memory-mapped ``arrays`` (the page cache keeps
    them; the next read maps them back without I/O). Checking a whole array at load touches
    every page, which would otherwise count in each worker's RSS until it exits."""
    for array in arrays:
        base: object = array.base
        while base is not None and not isinstance(base, mmap.mmap):
            base = getattr(base, "base", None)
        if isinstance(base, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            base.madvise(mmap.MADV_DONTNEED)


def _id_bytes(ids: np.ndarray) -> np.ndarray:
    """``ids`` (str objects) as a fixed-width bytes array: one buffer, memory-mappable."""
    encoded = [str(i).encode("utf-8", "surrogatepass") for i in ids]
    width = max((len(e) for e in encoded), default=1) or 1
    return np.array(encoded, dtype=f"S{width}")


@dataclass(frozen=True)
class ServingArrays:
    """One version's serving arrays (memory-mapped when loaded from files)."""

    topk_items: np.ndarray
    topk_scores: np.ndarray
    popular_items: np.ndarray
    user_ids: np.ndarray
    user_rows: np.ndarray
    item_ids: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray

    @property
    def k(self) -> int:
        return int(self.topk_items.shape[1])

    @property
    def n_users(self) -> int:
        return int(self.topk_items.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    def user_row(self, user_id: str) -> int | None:
        """The user index of ``user_id``, or None for a user this version does not know."""
        try:
            key = user_id.encode("utf-8", "surrogatepass")
        except UnicodeEncodeError:
            return None
        ids = self.user_ids
        if len(key) > ids.dtype.itemsize or not ids.shape[0]:
            return None
        pos = int(np.searchsorted(ids, key))
        if pos < ids.shape[0] and ids[pos] == key:
            return int(self.user_rows[pos])
        return None

    def seen_of(self, row: int) -> np.ndarray:
        return self.seen_indices[self.seen_indptr[row] : self.seen_indptr[row + 1]]

    def write(self, folder: Path) -> dict[str, Path]:
        """Save every array as ``<name>.npy`` in ``folder``; {file name: path}."""
        folder.mkdir(parents=True, exist_ok=True)
        written = {}
        for name in ARRAY_FILES:
            path = folder / name
            np.save(path, getattr(self, name.removesuffix(".npy")), allow_pickle=False)
            written[name] = path
        return written

    @classmethod
    def load(cls, files: Mapping[str, Path]) -> ServingArrays:
        """Memory-map the arrays (read-only, never unpickled) and check they fit together."""
        arrays = {}
        for name in ARRAY_FILES:
            path = files[name]
            try:
                mapped = np.load(path, mmap_mode="r", allow_pickle=False)
                # a plain ndarray over the same mapping: np.memmap's Python-level
                # __getitem__ would cost more than the lookup itself
                arrays[name.removesuffix(".npy")] = mapped.view(np.ndarray)
            except (OSError, ValueError) as exc:
                raise ServingArraysError(
                    f"{path} is not a readable npy array ({exc})",
                    hint="register the model again with the deploy task",
                ) from exc
        loaded = cls(**arrays)
        loaded.validate(str(Path(files[ARRAY_FILES[0]]).parent))
        release_pages(arrays.values())  # validating read every page; requests read a few
        return loaded

    def validate(self, where: str) -> None:
        """Refuse arrays that a request could index out of range or misread."""
        n_users = self.topk_items.shape[0] if self.topk_items.ndim == 2 else -1
        n_items = self.item_ids.shape[0] if self.item_ids.ndim == 1 else -1
        checks = (
            ("topk_items", self.topk_items, np.int32, (n_users, None)),
            ("topk_scores", self.topk_scores, np.float32, self.topk_items.shape),
            ("popular_items", self.popular_items, np.int32, (n_items,)),
            ("user_ids", self.user_ids, None, (n_users,)),
            ("user_rows", self.user_rows, np.int32, (n_users,)),
            ("item_ids", self.item_ids, None, (n_items,)),
            ("seen_indptr", self.seen_indptr, np.int64, (n_users + 1,)),
            ("seen_indices", self.seen_indices, np.int32, (None,)),
        )
        problems = []
        for name, array, dtype, shape in checks:
            if dtype is None and array.dtype.kind != "S":
                problems.append(f"{name} holds {array.dtype}, not UTF-8 bytes")
            elif dtype is not None and array.dtype != dtype:
                problems.append(f"{name} holds {array.dtype}, expected {np.dtype(dtype)}")
            elif len(shape) != array.ndim or any(
                want is not None and want != got
                for want, got in zip(shape, array.shape, strict=True)
            ):
                problems.append(f"{name} has shape {array.shape}, expected {shape}")
        if not problems:
            problems = self._range_problems(n_users, n_items)
        if problems:
            raise ServingArraysError(
                f"the serving arrays in {where} are inconsistent: {'; '.join(problems)}",
                hint="register the model again with the deploy task; do not edit a version",
            )

    def _range_problems(self, n_users: int, n_items: int) -> list[str]:
        def within(array: np.ndarray, low: int, high: int) -> bool:
            return not array.size or (int(array.min()) >= low and int(array.max()) < high)

        indptr = self.seen_indptr
        return [
            what
            for what, ok in (
                (
                    "topk_items names items outside the catalogue",
                    within(self.topk_items, -1, n_items),
                ),
                (
                    "popular_items names items outside the catalogue",
                    within(self.popular_items, 0, n_items),
                ),
                ("user_rows is not a permutation of the users", within(self.user_rows, 0, n_users)),
                (
                    "user_ids are not sorted and unique",
                    n_users < 2 or bool(np.all(self.user_ids[1:] > self.user_ids[:-1])),
                ),
                (
                    "seen_indptr is not a CSR row pointer",
                    int(indptr[0]) == 0
                    and int(indptr[-1]) == self.seen_indices.shape[0]
                    and bool(np.all(np.diff(indptr) >= 0)),
                ),
                (
                    "seen_indices names items outside the catalogue",
                    within(self.seen_indices, 0, n_items),
                ),
            )
            if not ok
        ]


Ranked = tuple[np.ndarray, np.ndarray]  # every user's top-K items (int32) and scores (float32)


def save_ranked(path: Path, ranked: Ranked, *, model_sha256: str, seen_sha256: str) -> Path:
    """Write a ranking made by batch inference with the model and training matrix of these
    sha256s, for deploy to reuse instead of ranking every user again."""
    members = {
        "items": ranked[0],
        "scores": ranked[1],
        "model_sha256": np.array(model_sha256.encode("ascii")),
        "seen_sha256": np.array(seen_sha256.encode("ascii")),
    }
    # np.savez's layout (uncompressed .npy members) without its wall-clock zip stamps: the
    # same ranking gives the same bytes, so ``reproduce`` can compare the file
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asanyarray(array), allow_pickle=False)
    return path


def load_ranked(path: Path, *, model_sha256: str, seen_sha256: str) -> Ranked | None:
    """The ranking in ``path`` if it was made with this model and training matrix (else
    None: it is recomputed); never unpickled. ``build_arrays`` checks its shape and range."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            made_by = (bytes(saved["model_sha256"]), bytes(saved["seen_sha256"]))
            if made_by != (model_sha256.encode("ascii"), seen_sha256.encode("ascii")):
                return None
            return saved["items"], saved["scores"]
    except (OSError, ValueError, KeyError) as exc:
        raise ServingArraysError(
            f"{path} is not a ranking saved by the inference task ({exc})",
            hint="re-run inference",
        ) from exc


def _checked_ranking(ranked: Ranked, n_users: int, n_items: int, k: int) -> Ranked:
    items, scores = ranked
    if (
        items.dtype != np.int32
        or scores.dtype != np.float32
        or items.shape != (n_users, k)
        or scores.shape != (n_users, k)
        or (items.size and (int(items.min()) < -1 or int(items.max()) >= n_items))
    ):
        raise ServingArraysError(
            f"the precomputed ranking ({items.dtype} {items.shape}, {scores.dtype} "
            f"{scores.shape}) is not every one of {n_users} users' top {k} of {n_items} items",
            hint="re-run inference with the model being deployed",
        )
    return items, scores


def build_arrays(
    model: Recommender,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    seen: sp.csr_matrix,
    k: int = DEFAULT_TOP_K,
    ranked: Ranked | None = None,
) -> ServingArrays:
    """Rank every user's top ``k`` with the model's own batch ``recommend`` (seen items
    excluded) and intern the ids; ``user_ids``/``item_ids`` are ordered by index.
    ``ranked``: that ranking, already made by batch inference (same model, same ``seen``)."""
    n_users, n_items = model.n_users, model.n_items
    if (user_ids.size, item_ids.size) != (n_users, n_items) or seen.shape != (n_users, n_items):
        raise ServingArraysError(
            f"the model was trained on {n_users} users x {n_items} items, but the serving "
            f"files hold {user_ids.size} users, {item_ids.size} items and a "
            f"{seen.shape[0]} x {seen.shape[1]} training matrix",
            hint="register the model with the index tables of the features run it was trained on",
        )
    k = max(1, min(k, n_items))
    if ranked is not None:
        items, scores = _checked_ranking(ranked, n_users, n_items, k)
    else:
        items = np.empty((n_users, k), np.int32)
        scores = np.empty((n_users, k), np.float32)
        for start in range(0, n_users, BUILD_BATCH_USERS):
            users = np.arange(start, min(start + BUILD_BATCH_USERS, n_users), dtype=np.int32)
            items[users], scores[users] = model.recommend(users, k, seen)
    import scipy.sparse as sp

    popularity = np.asarray(seen.sum(axis=0)).ravel()
    csr = sp.csr_matrix(seen)
    stored = csr.data != 0  # an explicitly stored zero is not an interaction (as SeenItems)
    kept = np.zeros(stored.size + 1, np.int64)
    np.cumsum(stored, out=kept[1:])
    indptr = kept[csr.indptr]  # row pointers over the stored entries only
    ids = _id_bytes(user_ids)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    if n_users > 1 and not np.all(sorted_ids[1:] > sorted_ids[:-1]):
        raise ServingArraysError("the user index names a user id twice", hint="re-run features")
    return ServingArrays(
        topk_items=items,
        topk_scores=scores,
        popular_items=np.argsort(-popularity, kind="stable").astype(np.int32),
        user_ids=sorted_ids,
        user_rows=order.astype(np.int32),
        item_ids=_id_bytes(item_ids),
        seen_indptr=indptr,
        seen_indices=csr.indices[stored].astype(np.int32),
    )


def build_from_files(
    model_or_path: Recommender | Path,
    serving_files: Mapping[str, Path],
    k: int = DEFAULT_TOP_K,
    ranked: Ranked | None = None,
) -> ServingArrays:
    """The arrays of a model and its ``SOURCE_FILES`` (index tables, training matrix)."""
    from recomart_pipeline.ml.data import read_implicit, read_index
    from recomart_pipeline.ml.persistence import load_model

    model = (
        load_model(model_or_path, allow_pickle=False)
        if isinstance(model_or_path, Path)
        else model_or_path
    )
    return build_arrays(
        model,
        read_index(serving_files["user_index.parquet"], "user_id", "user_idx"),
        read_index(serving_files["item_index.parquet"], "item_id", "item_idx"),
        read_implicit(serving_files["train_implicit.npz"]),
        k,
        ranked,
    )


def with_serving_arrays(
    model_file: Path,
    serving_files: Mapping[str, Path],
    folder: Path,
    k: int = DEFAULT_TOP_K,
    ranked: Ranked | None = None,
) -> dict[str, Path]:
    """``serving_files`` plus the arrays built from them (with ``ranked``: from that ranking
    of every user), written to ``folder``: what to register so the service answers from the
    arrays."""
    arrays = build_from_files(model_file, serving_files, k, ranked)
    return {**serving_files, **arrays.write(folder)}


def scratch_folder() -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for arrays about to be copied into the registry."""
    return tempfile.TemporaryDirectory(prefix="recomart-serving-arrays-")
