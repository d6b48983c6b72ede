"""Atomic writes and content hashes: the guarantees every task output and model file rely on.

A reader never sees half a file (write to a temporary file, fsync, rename), and every
artifact is identified by its sha256. These live in the contract so the model library and
the tasks can keep them without depending on the runtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recomart_pipeline.contract import known_hashes
from recomart_pipeline.contract.errors import UpstreamArtifactError

_HASH_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The file's sha256: the one this process took already if the file provably did not
    change since (``known_hashes``), else read and hashed now (and kept for next time)."""
    known = known_hashes.known_sha256(path)
    if known is not None:
        return known
    before = known_hashes.status_of(path)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    hexdigest = digest.hexdigest()
    known_hashes.remember(path, before, hexdigest)
    return hexdigest


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; it replaces ``target`` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o644)  # mkstemp makes 0600; reports and artifacts are meant to be shared
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` a new name of ``source``'s file (a hard link), or a copy of it where
    the file system cannot link (another device, no links). For outputs that pass an input
    on unchanged (evaluation's model, preparation's users/items, ingestion's fallback to its
    last good snapshot): no bytes are copied (evaluation's model was 265 MB at 20M events),
    and the file keeps the digest this process took of it (``known_hashes``), so it is not
    hashed again when published. Artifacts are never written in place, so sharing the file
    is safe: a tampered copy is refused by either name's hash check."""
    try:
        os.link(source, target, follow_symlinks=True)
    except OSError:
        shutil.copyfile(source, target)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: Path, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: Path, payload: Any) -> None:
    write_text_atomic(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def verify_artifact(name: str, path: Path, expected_sha256: str) -> None:
    """Refuse an artifact that is gone or was changed after it was published."""
    if not path.exists():
        raise UpstreamArtifactError(
            f"artifact '{name}' is missing at {path}",
            hint="re-materialize the task that produces it",
        )
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise UpstreamArtifactError(
            f"artifact '{name}' at {path} was modified after it was written "
            f"(sha256 {actual[:12]}… != recorded {expected_sha256[:12]}…)",
            hint="re-materialize the task that produces it instead of editing its output",
        )
