"""The request path: answers from the precomputed arrays, live scoring only where needed.

Each version here is a real fitted model registered with its arrays (``SMALL_K`` items per
user); the oracle is the model's own batch ``recommend`` over the training matrix, built here
independently of the service's code.
"""

from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.deployment.registry import ModelRegistry, RegistryError
from recomart_pipeline.deployment.serving_arrays import ServingArraysError
from recomart_pipeline.ml.data import read_implicit
from recomart_pipeline.ml.models import MODEL_TYPES
from recomart_pipeline.ml.persistence import load_model
from recomart_pipeline.serving.live import TRANSPOSED, ClassModel, MappedModel
from recomart_pipeline.serving.state import ServingState, load_state
from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.serving.conftest import N_ITEMS, N_USERS, SMALL_K, served_registry


def _state(registry: ModelRegistry, version: str) -> ServingState:
    return load_state(registry, registry.get(version))


def _oracle(
    registry: ModelRegistry, version: str, row: int, k: int, excluded: list[int] = ()
) -> tuple[list[str], list[float]]:
    """Top ``k`` of user ``row`` by the model's batch recommend, training items and
    ``excluded`` left out."""
    folder = registry.root / version
    model = load_model(folder / "model.npz", allow_pickle=False)
    seen = read_implicit(folder / "train_implicit.npz").tolil()
    for item in excluded:
        seen[row, item] = 1.0
    items, scores = model.recommend(np.arange(N_USERS), k, sp.csr_matrix(seen))
    filled = items[row] >= 0
    return [f"item-{i}" for i in items[row][filled]], scores[row][filled].tolist()


def _ids(answer) -> list[str]:
    return [item["item_id"] for item in answer.items]


def _scores(answer) -> list[float]:
    return [item["score"] for item in answer.items]


@pytest.mark.parametrize(("version", "model_type"), [("v0001", "als"), ("v0002", "popularity")])
def test_known_users_get_exactly_what_live_scoring_returns(registry, version, model_type):
    state = _state(registry, version)
    assert state.version.model_type == model_type and state.mapped and state.k == SMALL_K
    for row in range(N_USERS):
        for k in (1, 3, SMALL_K):
            answer = state.recommend(f"user-{row}", k)
            assert (answer.strategy, answer.source) == ("personalized", "precomputed")
            live_items, live_scores = state.live(row, k, np.empty(0, np.int32))
            assert _ids(answer) == [f"item-{i}" for i in live_items], (row, k)
            assert _scores(answer) == live_scores.tolist(), (row, k)
            assert (_ids(answer), _scores(answer)) == _oracle(registry, version, row, k)


def test_svd_precomputed_answers_match_live_items_and_scores_to_rounding(registry):
    """SVD scores a row by BLAS gemm in the batch and in a two-row gemm live: the items agree
    exactly, the scores to the last bit of float32."""
    state = _state(registry, "v0003")
    for row in range(N_USERS):
        answer = state.recommend(f"user-{row}", SMALL_K)
        live_items, live_scores = state.live(row, SMALL_K, np.empty(0, np.int32))
        assert _ids(answer) == [f"item-{i}" for i in live_items], row
        np.testing.assert_allclose(_scores(answer), live_scores, rtol=1e-6)


def test_unknown_users_get_the_most_interacted_items(registry):
    state = _state(registry, "v0001")
    counts = np.asarray(read_implicit(registry.root / "v0001" / "train_implicit.npz").sum(axis=0))
    counts = counts.ravel()
    expected = [f"item-{i}" for i in np.argsort(-counts, kind="stable")[:5]]
    answer = state.recommend("somebody-new", 5)
    assert (answer.strategy, answer.source) == ("popular", "precomputed")
    assert _ids(answer) == expected and _scores(answer) == [None] * 5
    # excluding items from an unknown user's list takes the next most popular ones
    answer = state.recommend("somebody-new", 5, exclude=expected[:2])
    assert _ids(answer) == [f"item-{i}" for i in np.argsort(-counts, kind="stable")[2:7]]


def test_exclusions_are_scored_live_and_honoured(registry):
    state = _state(registry, "v0001")
    for row in (0, 17, N_USERS - 1):
        before = _ids(state.recommend(f"user-{row}", 5))
        excluded = [before[0], before[3], "not-in-the-catalogue"]
        answer = state.recommend(f"user-{row}", 5, exclude=excluded)
        assert (answer.strategy, answer.source) == ("personalized", "live")
        assert not set(excluded) & set(_ids(answer))
        indices = [int(i.removeprefix("item-")) for i in excluded[:2]]
        assert (_ids(answer), _scores(answer)) == _oracle(registry, "v0001", row, 5, indices)


def test_more_items_than_precomputed_are_scored_live(registry):
    state = _state(registry, "v0001")
    answer = state.recommend("user-5", SMALL_K + 7)
    assert answer.source == "live" and len(answer.items) == SMALL_K + 7
    assert (_ids(answer), _scores(answer)) == _oracle(registry, "v0001", 5, SMALL_K + 7)
    assert _ids(answer)[:SMALL_K] == _ids(state.recommend("user-5", SMALL_K))


# -- tampered arrays: refused before any request can index with them ------------------------


def _rehash(registry: ModelRegistry, version: str, name: str) -> None:
    """Make ``version.json`` vouch for the file as it is now (a thorough tamperer)."""
    folder = registry.root / version
    record = json.loads((folder / "version.json").read_text())
    record["serving_files"][name] = sha256_file(folder / name)
    (folder / "version.json").write_text(json.dumps(record))


def test_a_modified_array_file_is_refused_by_its_hash(registry):
    path = registry.root / "v0001" / "topk_items.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="modified or replaced after it was published"):
        _state(registry, "v0001")


def test_arrays_of_another_model_are_refused_by_the_probe(registry):
    for name in ("topk_items.npy", "topk_scores.npy"):  # v0003's answers under v0001's model
        (registry.root / "v0001" / name).write_bytes((registry.root / "v0003" / name).read_bytes())
        _rehash(registry, "v0001", name)
    with pytest.raises(ServingArraysError, match="disagrees with the model's own scores"):
        _state(registry, "v0001")


def test_out_of_range_indices_are_refused(registry):
    path = registry.root / "v0001" / "topk_items.npy"
    items = np.load(path)
    items[3, 2] = N_ITEMS + 5
    np.save(path, items)
    _rehash(registry, "v0001", "topk_items.npy")
    with pytest.raises(ServingArraysError, match="topk_items names items outside the catalogue"):
        _state(registry, "v0001")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_array_is_never_unpickled(registry, tmp_path):
    marker = tmp_path / "pwned"
    path = registry.root / "v0001" / "user_ids.npy"
    np.save(path, np.array([_Payload(marker)] * N_USERS, dtype=object), allow_pickle=True)
    _rehash(registry, "v0001", "user_ids.npy")
    with pytest.raises(ServingArraysError, match="not a readable npy array"):
        _state(registry, "v0001")
    assert not marker.exists()


def test_a_version_without_arrays_is_served_from_arrays_built_in_memory(tmp_path):
    registry = served_registry(tmp_path, ["als"])
    folder = registry.root / "v0001"
    record = json.loads((folder / "version.json").read_text())
    record["serving_files"] = {}  # as registered before the arrays existed
    (folder / "version.json").write_text(json.dumps(record))
    for path in folder.glob("*.npy"):
        path.unlink()
    state = _state(registry, "v0001")
    assert not state.mapped
    answer = state.recommend("user-9", 5)
    assert answer.source == "precomputed"
    assert (_ids(answer), _scores(answer)) == _oracle(registry, "v0001", 9, 5)


# -- live scoring without the model classes -------------------------------------------------


def _over_a_mapping(array: np.ndarray) -> bool:
    base = array.base
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base is not None


@pytest.mark.parametrize("model_type", sorted(MODEL_TYPES))
def test_every_model_type_is_scored_live_from_its_memory_mapped_file(tmp_path, model_type):
    """The service scores each built-in model type with NumPy over the model file's arrays
    mapped read-only (no private copy, no model class), and ranks exactly as the batch."""
    registry = served_registry(tmp_path, [model_type])
    state = _state(registry, "v0001")
    model_file = (registry.root / "v0001" / "model.npz").resolve()
    assert isinstance(state.model, MappedModel) and state.model.mapped
    for name, array in state.model.state.items():
        if name == TRANSPOSED:
            continue
        assert not array.flags.writeable, name
        if array.size:  # a view of a mapping of the model file, not a copy of it
            assert _over_a_mapping(array), name
    assert any(str(model_file) in line for line in Path("/proc/self/maps").read_text().split("\n"))
    oracle = load_model(model_file, allow_pickle=False)
    seen = read_implicit(registry.root / "v0001" / "train_implicit.npz")
    items, scores = oracle.recommend(np.arange(N_USERS), N_ITEMS, seen)
    for row in range(N_USERS):
        np.testing.assert_allclose(
            state.model.scores(row), oracle.score_items(np.array([row]))[0], rtol=1e-6
        )
        live_items, live_scores = state.live(row, N_ITEMS, np.empty(0, np.int32))
        filled = items[row] >= 0
        assert live_items.tolist() == items[row][filled].tolist(), row
        np.testing.assert_allclose(live_scores, scores[row][filled], rtol=1e-6)


def test_a_model_file_the_mapped_reader_does_not_take_goes_to_the_model_class(tmp_path):
    """A compressed npz is a valid model file, but not mappable: it is served by the model
    class (same answers), not refused."""
    registry = served_registry(tmp_path, ["als"])
    path = registry.root / "v0001" / "model.npz"
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    with path.open("wb") as handle:
        np.savez_compressed(handle, **members)
    record = json.loads((path.parent / "version.json").read_text())
    record["sha256"] = sha256_file(path)
    (path.parent / "version.json").write_text(json.dumps(record))
    state = _state(registry, "v0001")
    assert isinstance(state.model, ClassModel) and not state.model.mapped
    answer = state.recommend("user-3", SMALL_K + 2)
    assert (_ids(answer), _scores(answer)) == _oracle(registry, "v0001", 3, SMALL_K + 2)


HEAVY_MODULES = ("numba", "llvmlite", "scipy", "pandas", "pyarrow", "sklearn", "threadpoolctl")


def test_the_service_imports_only_what_its_request_path_needs(tmp_path):
    """Building the app and loading, probing and answering a version (the live path too)
    imports none of the libraries training needs: each would cost every worker memory."""
    registry = served_registry(tmp_path, ["ease"])
    script = f"""
import sys
from pathlib import Path
from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline.serving.app import create_app
from recomart_pipeline.serving.state import load_state

registry = ModelRegistry(Path({str(registry.root)!r}))
create_app(registry)
state = load_state(registry, registry.champion())
assert state.recommend("user-1", {SMALL_K + 3}).source == "live"
assert state.recommend("user-1", 3, exclude=["item-1"]).source == "live"
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY_MODULES!r}))))
"""
    # the registry is built by this process (it needed the model classes): a fresh one
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
