"""Atomic writes, published checkpoints and hash verification."""

from __future__ import annotations

import json

import pytest

from recomart_pipeline.contract.errors import UpstreamArtifactError
from recomart_pipeline.contract.files import atomic_path, sha256_file, write_text_atomic
from recomart_pipeline.runtime.artifacts import ArtifactStore


def test_atomic_path_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "data.csv"
    write_text_atomic(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]


def _publish(store: ArtifactStore, run_id: str, text: str):
    staging = store.new_staging_dir(run_id, "make")
    out = staging / "sub" / "out.json"
    out.parent.mkdir()
    out.write_text(text)
    return store.publish(run_id, "make", staging, {"out": out}, {"rows": 1}, {"note": "x"})


def test_publish_records_hashes_and_latest_pointer(tmp_path):
    store = ArtifactStore(tmp_path)
    checkpoint = _publish(store, "run1", "[1]")
    path = checkpoint.path("out")
    assert path == tmp_path / "runs" / "run1" / "make" / "sub" / "out.json"
    assert checkpoint.artifacts["out"].sha256 == sha256_file(path)
    latest = json.loads((tmp_path / "latest" / "make.json").read_text())
    assert latest["run_id"] == "run1" and latest["metrics"] == {"rows": 1}
    assert not (tmp_path / "runs" / "run1" / ".staging" / "make").exists()


def test_find_checkpoint_prefers_this_run_then_latest(tmp_path):
    store = ArtifactStore(tmp_path)
    _publish(store, "run1", "[1]")
    _publish(store, "run2", "[2]")
    assert store.find_checkpoint("make", "run1").run_id == "run1"
    assert store.find_checkpoint("make", "run3").run_id == "run2"
    assert store.find_checkpoint("other") is None


def test_republishing_in_the_same_run_replaces_the_directory(tmp_path):
    store = ArtifactStore(tmp_path)
    _publish(store, "run1", "[1]")
    checkpoint = _publish(store, "run1", "[1, 2]")
    assert checkpoint.path("out").read_text() == "[1, 2]"
    assert sorted(p.name for p in (tmp_path / "runs" / "run1").iterdir()) == [".staging", "make"]


def test_corrupted_upstream_artifact_is_detected(tmp_path):
    store = ArtifactStore(tmp_path)
    checkpoint = _publish(store, "run1", "[1]")
    checkpoint.path("out").write_text("[666]")
    with pytest.raises(UpstreamArtifactError, match="was modified after it was written"):
        store.load_upstream("make", "run1")


def test_missing_upstream_names_the_task(tmp_path):
    with pytest.raises(UpstreamArtifactError, match="upstream task 'make' has no checkpoint"):
        ArtifactStore(tmp_path).load_upstream("make", None)


def test_output_outside_the_staging_dir_is_refused(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    staging = store.new_staging_dir("run1", "make")
    stray = tmp_path / "stray.txt"
    stray.write_text("x")
    with pytest.raises(UpstreamArtifactError, match="outside its output dir"):
        store.publish("run1", "make", staging, {"stray": stray}, {}, {})


def test_atomic_files_are_readable_by_others(tmp_path):
    target = tmp_path / "report.html"
    write_text_atomic(target, "<html></html>")
    assert target.stat().st_mode & 0o777 == 0o644


def test_load_upstream_verifies_the_files_the_reader_reads_and_only_those(tmp_path):
    store = ArtifactStore(tmp_path)
    staging = store.new_staging_dir("run1", "make")
    (staging / "read.json").write_text("[1]")
    (staging / "unread.json").write_text("[2]")
    files = {name: staging / f"{name}.json" for name in ("read", "unread")}
    checkpoint = store.publish("run1", "make", staging, files, {}, {})
    checkpoint.path("unread").write_text("[666]")
    loaded = store.load_upstream("make", "run1", reads=lambda name: name == "read")
    assert loaded.path("read").read_text() == "[1]"
    with pytest.raises(UpstreamArtifactError, match=r"'unread' .* was modified after"):
        store.load_upstream("make", "run1")  # every file, as before
    checkpoint.path("read").write_text("[666]")
    with pytest.raises(UpstreamArtifactError, match=r"'read' .* was modified after"):
        store.load_upstream("make", "run1", reads=lambda name: name == "read")
