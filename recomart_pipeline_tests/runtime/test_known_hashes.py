"""A file hashed once in a process is not read again while it provably did not change; any
change to it (even one that restores its size and times) is still caught."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import pytest

from recomart_pipeline.contract import known_hashes
from recomart_pipeline.contract.errors import UpstreamArtifactError
from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.runtime.artifacts import ArtifactStore

_SECOND = 1_000_000_000
_IS_LOCAL = known_hashes._is_local.__wrapped__  # the mount-table lookup, without its cache


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashes finish a second after the files' last change (as a large artifact's do), on
    a local file system whatever the machine's ``tmp_path`` is, and no digest from another
    test is kept."""
    monkeypatch.setattr(known_hashes, "_known", {})
    monkeypatch.setattr(known_hashes, "_now_ns", lambda: time.time_ns() + _SECOND)
    monkeypatch.setattr(known_hashes, "_is_local", lambda device: True)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files opened for reading (only) through ``Path.open``."""
    names: list[str] = []
    real_open = Path.open

    def spy(self: Path, mode: str = "r", *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if "r" in mode and "+" not in mode:
            names.append(self.name)
        return real_open(self, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", spy)
    return names


def _publish(store: ArtifactStore, text: str):
    staging = store.new_staging_dir("run1", "make")
    (staging / "out.bin").write_text(text)
    return store.publish("run1", "make", staging, {"out": staging / "out.bin"}, {}, {})


def test_a_published_file_is_verified_without_being_read_again(tmp_path, later, opened):
    store = ArtifactStore(tmp_path)
    checkpoint = _publish(store, "x" * 4096)
    assert opened.count("out.bin") == 1  # hashed once, when published
    store.load_upstream("make", "run1")
    store.load_upstream("make", "run1")
    assert opened.count("out.bin") == 1
    assert known_hashes.known_sha256(checkpoint.path("out")) == checkpoint.artifacts["out"].sha256


def test_a_change_that_restores_size_and_times_is_caught(tmp_path, later):
    store = ArtifactStore(tmp_path)
    checkpoint = _publish(store, "a" * 4096)
    path = checkpoint.path("out")
    store.load_upstream("make", "run1")
    before = os.stat(path)
    with path.open("r+b") as handle:  # same size, one byte different
        handle.write(b"b")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back
    assert os.stat(path).st_size == before.st_size
    with pytest.raises(UpstreamArtifactError, match="was modified after it was written"):
        store.load_upstream("make", "run1")


def test_a_replaced_file_with_the_same_size_and_mtime_is_caught(tmp_path, later):
    store = ArtifactStore(tmp_path)
    checkpoint = _publish(store, "a" * 4096)
    path = checkpoint.path("out")
    before = os.stat(path)
    forged = path.with_name("forged")
    forged.write_text("b" * 4096)
    os.utime(forged, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(forged, path)
    with pytest.raises(UpstreamArtifactError, match="was modified after it was written"):
        store.load_upstream("make", "run1")


def test_a_file_changed_while_it_was_hashed_is_not_kept(tmp_path, later):
    path = tmp_path / "moving.bin"
    path.write_text("old")
    before = known_hashes.status_of(path)
    digest = sha256_file(path)
    path.write_text("new")  # after the status was taken, before it is compared again
    known_hashes.remember(path, before, digest)
    assert known_hashes.known_sha256(path) is None


def test_a_file_on_a_network_file_system_is_not_kept(tmp_path, later, monkeypatch):
    """Its client may serve cached attributes that hide another host's change."""
    path = tmp_path / "shared.bin"
    path.write_text("shared")
    device = os.stat(path).st_dev
    mountinfo = tmp_path / "mountinfo"
    monkeypatch.setattr(known_hashes, "_MOUNTINFO", mountinfo)
    for kind, kept in (("nfs4", False), ("ext4", True)):
        mountinfo.write_text(
            "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
            f"36 25 {os.major(device)}:{os.minor(device)} / /srv rw - {kind} host:/x rw\n"
        )
        monkeypatch.setattr(known_hashes, "_is_local", functools.cache(_IS_LOCAL))
        monkeypatch.setattr(known_hashes, "_known", {})
        digest = sha256_file(path)
        assert known_hashes.known_sha256(path) == (digest if kept else None)


def test_no_readable_mount_table_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(known_hashes, "_MOUNTINFO", tmp_path / "absent")
    assert _IS_LOCAL(os.stat(tmp_path).st_dev) is False


def test_a_long_lived_process_keeps_a_bounded_number(tmp_path, later, monkeypatch):
    monkeypatch.setattr(known_hashes, "_MAX_KEPT", 3)
    paths = [tmp_path / f"{index}.bin" for index in range(5)]
    for path in paths:
        path.write_text(path.name)
        sha256_file(path)
    kept = [known_hashes.known_sha256(path) is not None for path in paths]
    assert kept == [False, False, True, True, True]  # the oldest went first


def test_a_digest_is_kept_only_once_the_last_write_is_settled(tmp_path, monkeypatch):
    monkeypatch.setattr(known_hashes, "_known", {})
    monkeypatch.setattr(known_hashes, "_is_local", lambda device: True)
    path = tmp_path / "fresh.bin"
    path.write_text("fresh")
    ctime = os.stat(path).st_ctime_ns
    monkeypatch.setattr(known_hashes, "_now_ns", lambda: ctime + known_hashes._SETTLED_NS // 2)
    sha256_file(path)
    assert known_hashes.known_sha256(path) is None  # a change in the same tick could follow
    monkeypatch.setattr(known_hashes, "_now_ns", lambda: ctime + 2 * known_hashes._SETTLED_NS)
    digest = sha256_file(path)
    assert known_hashes.known_sha256(path) == digest


def test_whole_second_ctimes_need_two_seconds():
    status = known_hashes.FileStatus(1, 2, 3, 4, 5 * _SECOND)
    assert not known_hashes._settled(status, 5 * _SECOND + _SECOND)
    assert known_hashes._settled(status, 5 * _SECOND + 3 * _SECOND)
    fine = status._replace(ctime_ns=5 * _SECOND + 1)
    assert known_hashes._settled(fine, fine.ctime_ns + 2 * known_hashes._SETTLED_NS)
