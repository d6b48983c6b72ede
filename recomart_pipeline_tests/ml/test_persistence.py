"""Model files: round trips, hash verification, pickle refusal and version checks."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tracemalloc

import numpy as np
import pytest

from recomart_pipeline.contract.errors import UpstreamArtifactError
from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.ml import persistence
from recomart_pipeline.ml.ease import EASERecommender
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.persistence import (
    ModelFormatError,
    ModelIntegrityError,
    load_model,
    read_header,
    save_model,
    sidecar_path,
)


@pytest.mark.parametrize("fmt", ["npz", "pickle"])
@pytest.mark.parametrize("name", ["svd", "als", "popularity"])
def test_round_trip_gives_identical_predictions(fitted, tmp_path, name, fmt):
    model = fitted[name]
    path = tmp_path / f"model.{fmt}"
    digest = save_model(model, path, model_format=fmt, metadata={"run_id": "r1"})
    assert digest == sha256_file(path)
    loaded = load_model(path, expected_sha256=digest)
    assert type(loaded) is type(model)
    assert loaded.params == model.params
    assert (loaded.n_users, loaded.n_items) == (model.n_users, model.n_items)
    users, items = np.arange(20), np.arange(20) % model.n_items
    np.testing.assert_array_equal(loaded.predict(users, items), model.predict(users, items))
    np.testing.assert_array_equal(loaded.score_items(users), model.score_items(users))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_npz_header_describes_the_model(fitted, tmp_path):
    path = tmp_path / "svd.npz"
    save_model(fitted["svd"], path, metadata={"model_name": "cf"})
    header = read_header(path)
    assert header["format_version"] == persistence.FORMAT_VERSION
    assert header["model_type"] == "collaborative_filtering_svd"
    assert header["params"]["n_factors"] == fitted["svd"].params.n_factors
    assert header["metadata"] == {"model_name": "cf"}
    with np.load(path, allow_pickle=False) as archive:  # plain arrays, no pickled objects
        assert "user_factors" in archive.files


def test_hash_mismatch_is_refused(fitted, tmp_path):
    path = tmp_path / "m.npz"
    digest = save_model(fitted["popularity"], path)
    with pytest.raises(ModelIntegrityError, match="modified or replaced"):
        load_model(path, expected_sha256="0" * 64)
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        load_model(path, expected_sha256=digest)


def test_pickle_without_a_hash_is_never_unpickled(fitted, tmp_path, monkeypatch):
    path = tmp_path / "m.pkl"
    digest = save_model(fitted["svd"], path, model_format="pickle")
    assert sidecar_path(path).read_text().split()[0] == digest
    sidecar_path(path).unlink()

    def boom(*args, **kwargs):
        raise AssertionError("pickle.loads must not run")

    monkeypatch.setattr(persistence.pickle, "loads", boom)
    with pytest.raises(ModelIntegrityError, match=r"no m\.pkl\.sha256 sidecar"):
        load_model(path)
    monkeypatch.undo()
    assert load_model(path, expected_sha256=digest).is_fitted  # a known hash is enough


def test_tampered_pickle_is_refused_before_unpickling(fitted, tmp_path, monkeypatch):
    path = tmp_path / "m.pkl"
    save_model(fitted["svd"], path, model_format="pickle")
    path.write_bytes(path.read_bytes() + b"tampered")
    monkeypatch.setattr(persistence.pickle, "loads", lambda data: pytest.fail("unpickled"))
    with pytest.raises(ModelIntegrityError, match="does not match the sidecar"):
        load_model(path)


def _rewrite_header(path, **changes):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays["__header__"].tobytes())
    header.update(changes)
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format_version": 99}, "format version 99"),
        ({"format": "something-else"}, "not a recomart-model file"),
        ({"model_type": "deep_magic"}, "unknown model_type 'deep_magic'"),
        ({"n_users": 3}, "expected 3 rows"),
        ({"params": {"n_factors": -1}}, "n_factors"),
    ],
)
def test_unreadable_headers_are_refused(fitted, tmp_path, changes, message):
    path = tmp_path / "m.npz"
    save_model(fitted["svd"], path)
    _rewrite_header(path, **changes)
    with pytest.raises(ModelFormatError, match=message):
        load_model(path)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(UpstreamArtifactError, match="does not exist"):
        load_model(tmp_path / "nope.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFormatError, match="not a readable model file"):
        load_model(garbage)


def _buffered_bytes(model, model_format: str, metadata: dict) -> bytes:
    """The file as ``save_model`` wrote it before it streamed: built whole in memory."""
    header = persistence.model_header(model, metadata)
    arrays = model.to_arrays()
    if model_format == "pickle":
        return pickle.dumps({"header": header, "arrays": arrays}, protocol=5)
    header_bytes = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **{persistence.HEADER_KEY: header_bytes, **arrays})
    return buffer.getvalue()


@pytest.fixture(scope="module")
def ease_model(data):
    model = create_model("ease", {})
    model.fit(data.train)
    return model


@pytest.mark.parametrize("fmt", ["npz", "pickle"])
def test_streamed_save_writes_the_buffered_saves_bytes_and_digest(
    fitted, ease_model, tmp_path, fmt
):
    for model in (ease_model, fitted["als"]):
        path = tmp_path / f"{model.model_type}.{fmt}"
        digest = save_model(model, path, model_format=fmt, metadata={"run_id": "r1"})
        expected = _buffered_bytes(model, fmt, {"run_id": "r1"})
        assert path.read_bytes() == expected
        assert digest == hashlib.sha256(expected).hexdigest()
        if fmt == "pickle":
            assert sidecar_path(path).read_text() == f"{digest}  {path.name}\n"


@pytest.mark.parametrize("fmt", ["npz", "pickle"])
def test_files_written_by_the_buffered_save_still_load(ease_model, tmp_path, fmt):
    path = tmp_path / f"old.{fmt}"
    path.write_bytes(_buffered_bytes(ease_model, fmt, {}))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_model(path, expected_sha256=digest)
    users = np.arange(30)
    np.testing.assert_array_equal(loaded.score_items(users), ease_model.score_items(users))


@pytest.mark.parametrize("fmt", ["npz", "pickle"])
def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(
    fitted, ease_model, tmp_path, monkeypatch, fmt
):
    path = tmp_path / f"model.{fmt}"
    old_digest = save_model(fitted["popularity"], path, model_format=fmt)
    old_bytes = path.read_bytes()
    old_sidecar = sidecar_path(path).read_bytes() if fmt == "pickle" else None
    written_before_failure: list[int] = []

    def fail_after_some_bytes(handle, *args, **kwargs):
        handle.write(b"\0" * 2**20)  # past any write buffer: on disk, in the temporary
        written_before_failure.extend(p.stat().st_size for p in tmp_path.glob(".*.tmp"))
        raise OSError("disk full")

    if fmt == "npz":
        monkeypatch.setattr(np.lib.format, "write_array", fail_after_some_bytes)
    else:
        monkeypatch.setattr(
            persistence.pickle, "dump", lambda obj, handle, **kw: fail_after_some_bytes(handle)
        )
    with pytest.raises(OSError, match="disk full"):
        save_model(ease_model, path, model_format=fmt)
    assert written_before_failure and written_before_failure[0] >= 2**20  # it failed mid-write
    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [path.name] + ([sidecar_path(path).name] if fmt == "pickle" else [])
    )
    if fmt == "pickle":
        assert sidecar_path(path).read_bytes() == old_sidecar
    monkeypatch.undo()
    assert load_model(path, expected_sha256=old_digest).model_type == "popularity"


@pytest.mark.parametrize("fmt", ["npz", "pickle"])
def test_saving_holds_no_copy_of_the_model_in_memory(data, tmp_path, fmt):
    """Built in a buffer, the file was allocated whole on top of the model (tracemalloc's
    peak for this 64 MiB model: 80 MiB as npz, 96 MiB as pickle); streamed, the save's own
    allocations stay a fraction of the model's size."""
    n_items = 4096
    model = EASERecommender.from_arrays(
        {},
        data.train.n_users,
        n_items,
        {
            "item_weights": np.ones((n_items, n_items), np.float32),  # 64 MiB
            "user_items_indptr": np.zeros(data.train.n_users + 1, np.int32),
            "user_items_indices": np.zeros(0, np.int32),
            "user_items_data": np.zeros(0, np.float32),
        },
    )
    size = 4 * n_items**2
    tracemalloc.start()
    try:
        save_model(model, tmp_path / f"big.{fmt}", model_format=fmt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 2, f"peak {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB model"
