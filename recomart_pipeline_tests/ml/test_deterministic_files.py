"""Model files are a function of the model: same model, same bytes, whenever and by whichever
run they are written (``reproduce`` and the registry rely on the hash)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest

from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.persistence import read_header, save_model
from recomart_pipeline_tests.helpers import REPO_ROOT
from recomart_pipeline_tests.ml.conftest import ALS_PARAMS, SVD_PARAMS


@pytest.mark.parametrize("fmt", ["npz", "pickle"])
@pytest.mark.parametrize("name", ["svd", "als", "popularity"])
def test_two_saves_of_a_model_are_byte_identical(fitted, tmp_path, name, fmt):
    first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    digest = save_model(fitted[name], first, model_format=fmt, metadata={"candidate": name})
    again = save_model(fitted[name], second, model_format=fmt, metadata={"candidate": name})
    assert digest == again and first.read_bytes() == second.read_bytes()
    header = read_header(first, expected_sha256=digest)
    assert "created_at" not in header and header["metadata"] == {"candidate": name}


def test_npz_entries_carry_a_fixed_date_not_the_time_of_writing(fitted, tmp_path):
    path = tmp_path / "m.npz"
    save_model(fitted["svd"], path)
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        entries = archive.infolist()
    assert {e.date_time for e in entries} == {(1980, 1, 1, 0, 0, 0)}  # zip's default date
    assert entries[0].filename == "__header__.npy"  # fixed order, header first


@pytest.mark.parametrize(
    ("model_type", "params"),
    [
        ("collaborative_filtering_svd", SVD_PARAMS),
        ("als", ALS_PARAMS),
        ("baseline_bias", {}),
        ("popularity", {}),
    ],
)
def test_refitting_with_the_same_seed_writes_the_same_file(data, tmp_path, model_type, params):
    digests = set()
    for attempt in range(2):
        model = create_model(model_type, params)  # seeded (default seed 0)
        model.fit(data.train)
        digests.add(save_model(model, tmp_path / f"{attempt}.npz"))
    assert len(digests) == 1


FIT_ALS = """
import hashlib, sys
from recomart_pipeline.ml.models import create_model
from recomart_pipeline_tests.ml.conftest import ALS_PARAMS
from recomart_pipeline_tests.ml.synthetic import make_synthetic
train = make_synthetic(n_users=400, n_items=250, per_user=40, seed=0).train
for _ in range(3):
    model = create_model("als", {**ALS_PARAMS, "n_factors": 16, "seed": 3})
    model.fit(train)
    arrays = model.to_arrays()
    print(hashlib.sha256(arrays["user_factors"].tobytes() + arrays["item_factors"].tobytes())
          .hexdigest())
"""


@pytest.mark.slow
def test_als_gives_the_same_factors_whether_its_kernel_was_just_compiled_or_cached(tmp_path):
    # A kernel whose float sums LLVM may reorder gave other factors depending on where its
    # scratch arrays landed (vectorised or scalar path), i.e. on compilation and heap state.
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    hashes = []
    for _ in range(3):  # the first process compiles the kernels, the others load them
        done = subprocess.run(
            [sys.executable, "-c", FIT_ALS], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-2000:]
        hashes += done.stdout.split()
    assert len(hashes) == 9 and len(set(hashes)) == 1, json.dumps(hashes, indent=1)
