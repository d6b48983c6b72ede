"""Deploy builds the serving arrays from inference's ranking when it depends on inference:
the same arrays as ranking every user again, with the ranking made once. A ranking of
another model or training matrix is not used, and a malformed one is refused."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline.deployment.serving_arrays import (
    ARRAY_FILES,
    ServingArraysError,
    build_from_files,
    load_ranked,
    save_ranked,
)
from recomart_pipeline.ml.data import read_implicit
from recomart_pipeline.ml.persistence import load_model
from recomart_pipeline.runtime.runner import run_task
from recomart_pipeline_tests.deployment.conftest import set_deploy_config

SOURCES = {
    "user_index.parquet": ("features", "user_index"),
    "item_index.parquet": ("features", "item_index"),
    "train_implicit.npz": ("features", "train_implicit"),
}


def _latest(config: PipelineConfig, task: str, name: str):
    record = json.loads((config.storage_root / "latest" / f"{task}.json").read_text())
    return config.storage_root / record["artifacts"][name]["path"]


def _sources(config: PipelineConfig):
    return {file: _latest(config, task, name) for file, (task, name) in SOURCES.items()}


def _depend_on_inference(config: PipelineConfig) -> None:
    text = config.path.read_text()
    config.path.write_text(
        text.replace(
            "depends_on: [evaluation, features, report]",
            "depends_on: [evaluation, features, inference, report]",
        )
    )


def test_inference_ranking_gives_the_arrays_of_ranking_every_user(trained):
    model_file = _latest(trained, "evaluation", "model")
    sources = _sources(trained)
    model_sha = json.loads(_latest(trained, "evaluation", "evaluation").read_text())["model_sha256"]
    ranked = load_ranked(
        _latest(trained, "inference", "serving_topk"),
        model_sha256=model_sha,
        seen_sha256=sha256_file(sources["train_implicit.npz"]),
    )
    assert ranked is not None
    rebuilt = build_from_files(model_file, sources)
    reused = build_from_files(model_file, sources, ranked=ranked)
    for name in ARRAY_FILES:
        key = name.removesuffix(".npy")
        np.testing.assert_array_equal(getattr(reused, key), getattr(rebuilt, key), err_msg=key)
    # the recommendations file is the first k of that ranking: what ranking at k gives
    model = load_model(model_file, allow_pickle=False)
    users = np.arange(model.n_users, dtype=np.int32)
    items, _ = model.recommend(users, 10, read_implicit(sources["train_implicit.npz"]))
    np.testing.assert_array_equal(ranked[0][:, :10], items)


def _replace_ranking(config: PipelineConfig, items: np.ndarray, scores: np.ndarray) -> None:
    """Overwrite inference's ranking in place (same model and matrix hashes), updating the
    hash records so the runtime accepts it: which arrays deploy registers then shows
    whether it used this file or ranked the users itself."""
    path = _latest(config, "inference", "serving_topk")
    with np.load(path) as saved:
        shas = {key: bytes(saved[key]).decode() for key in ("model_sha256", "seen_sha256")}
    save_ranked(path, (items, scores), **shas)
    pointer = config.storage_root / "latest" / "inference.json"
    record = json.loads(pointer.read_text())
    record["artifacts"]["serving_topk"]["sha256"] = sha256_file(path)
    result = config.storage_root / "runs" / record["run_id"] / "inference" / "_result.json"
    for target in (pointer, result):
        target.write_text(json.dumps(record))


def test_deploy_registers_inference_ranking_instead_of_ranking_again(trained):
    rebuilt = build_from_files(_latest(trained, "evaluation", "model"), _sources(trained))
    # a valid ranking that differs from the model's: the users' rows rotated by one
    marked_items = np.roll(rebuilt.topk_items, 1, axis=0)
    marked_scores = np.roll(rebuilt.topk_scores, 1, axis=0)
    assert not np.array_equal(marked_items, rebuilt.topk_items)
    _replace_ranking(trained, marked_items, marked_scores)
    # no service check: the service would refuse arrays that disagree with the model
    _depend_on_inference(set_deploy_config(trained, "{service: {mode: none}}"))
    config = PipelineConfig(trained.path)
    done = run_task(config, "deploy", "run-1")
    version = json.loads(done.checkpoint.path("deployment").read_text())["version"]
    folder = ModelRegistry(config.storage_root / "registry").version_dir(version)
    np.testing.assert_array_equal(np.load(folder / "topk_items.npy"), marked_items)
    np.testing.assert_array_equal(np.load(folder / "topk_scores.npy"), marked_scores)


def test_a_ranking_of_another_model_or_matrix_is_not_used_and_a_malformed_one_refused(
    tmp_path, trained
):
    path = tmp_path / "ranked.npz"
    items = np.zeros((3, 2), np.int32)
    save_ranked(path, (items, np.zeros((3, 2), np.float32)), model_sha256="a", seen_sha256="b")
    assert load_ranked(path, model_sha256="a", seen_sha256="b") is not None
    with zipfile.ZipFile(path) as archive:  # no wall-clock stamps: reproducible bytes
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert load_ranked(path, model_sha256="x", seen_sha256="b") is None
    assert load_ranked(path, model_sha256="a", seen_sha256="x") is None
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(ServingArraysError, match="not a ranking saved by the inference task"):
        load_ranked(tmp_path / "garbage.npz", model_sha256="a", seen_sha256="b")
    with pytest.raises(ServingArraysError, match="is not every one of"):
        build_from_files(
            _latest(trained, "evaluation", "model"),
            _sources(trained),
            ranked=(items, items.astype(np.float32)),
        )
