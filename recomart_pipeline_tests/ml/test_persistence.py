"""Model files: round trips, hash verification, pickle refusal and version checks."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from recomart_pipeline.contract.errors import UpstreamArtifactError
from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.ml import persistence
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
