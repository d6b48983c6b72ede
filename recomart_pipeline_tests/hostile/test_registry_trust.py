"""A tampered model registry never runs code and never leaves its folder.

The registry lives in a folder anyone with write access can edit, so a hash read from that
folder proves nothing: ids must be ids, file names plain npz names, and the service never
unpickles. Each attack below is built with real files; a marker file shows whether the
payload ran.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.deployment.registry import ModelRegistry, RegistryError
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.persistence import ModelIntegrityError, save_model
from recomart_pipeline.serving.state import load_state
from recomart_pipeline_tests.ml.synthetic import make_synthetic


class _Payload:
    """Unpickling this creates the marker file: proof that attacker code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    data = make_synthetic(n_users=30, n_items=20, per_user=5, seed=1)
    model = create_model("popularity")
    model.fit(data.train)
    model_file = tmp_path / "model.npz"
    save_model(model, model_file, model_format="npz")
    serving = {}
    for name in ("user_index.parquet", "item_index.parquet", "train_implicit.npz"):
        serving[name] = tmp_path / name
        serving[name].write_bytes(b"x")
    registry = ModelRegistry(tmp_path / "registry")
    version, _ = registry.register(
        model_file, serving, model_type="popularity", metrics={}, data_hash=None, run_id="r1"
    )
    registry.promote(version.version)
    return registry


def _evil_pickle(path: Path, marker: Path) -> str:
    path.write_bytes(pickle.dumps(_Payload(marker)))
    return sha256_file(path)


def test_a_champion_pointing_outside_the_registry_is_refused(registry, tmp_path):
    outside = tmp_path / "x"
    outside.mkdir()
    (outside / "version.json").write_text(json.dumps({"version": "../../../x"}))
    (registry.root / "champion.json").write_text(json.dumps({"version": "../x"}))
    with pytest.raises(RegistryError, match=re.escape("'../x' is not a model version id")):
        registry.champion()


def test_a_version_record_naming_a_pickle_is_refused_and_nothing_runs(registry, tmp_path):
    marker = tmp_path / "pwned"
    folder = registry.root / "v0001"
    digest = _evil_pickle(folder / "evil.pkl", marker)
    record = json.loads((folder / "version.json").read_text())
    record.update(model_file="evil.pkl", sha256=digest)
    (folder / "version.json").write_text(json.dumps(record))
    with pytest.raises(
        RegistryError, match=re.escape("model_file 'evil.pkl' is not an npz file name")
    ):
        registry.champion()
    assert not marker.exists()


def test_a_pickle_disguised_as_the_npz_file_is_never_unpickled(registry, tmp_path):
    marker = tmp_path / "pwned"
    folder = registry.root / "v0001"
    record = json.loads((folder / "version.json").read_text())
    record["sha256"] = _evil_pickle(folder / record["model_file"], marker)  # hash "matches"
    (folder / "version.json").write_text(json.dumps(record))
    champion = registry.champion()
    assert champion is not None
    with pytest.raises(ModelIntegrityError, match="never unpickles"):
        load_state(registry, champion)
    assert not marker.exists()


def test_the_untampered_champion_loads(registry):
    champion = registry.champion()
    assert champion is not None and champion.model_file == "model.npz"
    with pytest.raises(Exception) as caught:  # the dummy serving files are not real tables
        load_state(registry, champion)
    assert not isinstance(caught.value, (RegistryError, ModelIntegrityError))


def test_only_npz_models_are_registered(registry, tmp_path):
    data = make_synthetic(n_users=30, n_items=20, per_user=5, seed=1)
    model = create_model("popularity")
    model.fit(data.train)
    save_model(model, tmp_path / "model.pkl", model_format="pickle")
    with pytest.raises(RegistryError, match="only npz models are registered"):
        registry.register(
            tmp_path / "model.pkl",
            {},
            model_type="popularity",
            metrics={},
            data_hash=None,
            run_id="r2",
        )
    assert np.array_equal([v.version for v in registry.list_versions()], ["v0001"])
