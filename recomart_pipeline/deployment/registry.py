"""A model registry on disk: versions, a champion pointer, promotion history, approvals.

Layout (default ``<storage>/registry``)::

    v0001/ model.npz  user_index.parquet  item_index.parquet  train_implicit.npz  version.json
           topk_items.npy  topk_scores.npy  ...   the serving arrays (deployment/serving_arrays.py)
    champion.json   the current champion (replaced by one atomic rename)
    history.json    every promotion, so rollback can restore the previous champion
    pending.json    versions awaiting human approval

A version holds everything the serving app needs, so the service depends on the registry
only. ``version.json`` records the sha256 of every file registered next to the model
(``serving_files``); the service verifies each one before it reads it, as it does the model.
Registering the same model bytes twice returns the existing version (idempotency key: the
model's sha256).

With an object store (``storage.base_dir: s3://…``) the registry lives at ``<base>/registry``
and this folder is its local copy: each change pulls the state first and pushes what changed
after (new version files before their ``version.json``, ``champion.json`` last); readers call
``refresh()``, and a version's files are downloaded when first used.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from recomart_pipeline.contract.errors import TaskError
from recomart_pipeline.contract.files import sha256_file, write_json_atomic
from recomart_pipeline.contract.task import SharedStore

SERVING_FILES = ("user_index.parquet", "item_index.parquet", "train_implicit.npz")
STATE_FILES = ("history.json", "pending.json", "champion.json")  # champion last on push


class RegistryError(TaskError):
    error_class = "registry_error"


# What a registry file may name: anything else was not written by this registry.
VERSION_ID = re.compile(r"v[0-9]{4,}")
MODEL_FILE = re.compile(r"[A-Za-z0-9_-]+\.npz")
SERVING_FILE = re.compile(r"[A-Za-z0-9_-]+\.(npy|npz|parquet)")
SHA256 = re.compile(r"[0-9a-f]{64}")


def checked_version(version: object) -> str:
    """``version`` if it is a version id (``v0001``…), never a path."""
    if not isinstance(version, str) or not VERSION_ID.fullmatch(version):
        raise RegistryError(
            f"{version!r} is not a model version id (v0001, v0002, ...)",
            hint="the registry or the command line names a version this registry never wrote",
        )
    return version


@dataclass
class ModelVersion:
    version: str
    model_file: str
    sha256: str
    model_type: str
    metrics: dict[str, Any]
    data_hash: str | None
    run_id: str
    created_at: str
    config: dict[str, Any] = field(default_factory=dict)
    # sha256 of each file registered next to the model; empty in versions registered before
    # the registry recorded them (their files are read unverified, as they always were)
    serving_files: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _read(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def _file_stamps(root: Path) -> dict[Path, tuple[int, int]]:
    return {
        path: (path.stat().st_mtime_ns, path.stat().st_size)
        for path in root.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    }


def _push_order(path: Path) -> tuple[int, str]:
    """Model files, then each version's record, then history/pending, champion pointer last."""
    if path.name in STATE_FILES:
        return 2 + STATE_FILES.index(path.name), path.name
    return (1 if path.name == "version.json" else 0), str(path)


class ModelRegistry:
    def __init__(self, root: Path, remote: SharedStore | None = None) -> None:
        self.root = root
        self.remote = remote

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self.refresh()
                before = _file_stamps(self.root)
                yield
                self._push(before)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- object store ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Bring the local copy's state (pointers, history, version records) up to date."""
        if self.remote is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        for name in STATE_FILES:
            if not self.remote.download(name, self.root / name):
                (self.root / name).unlink(missing_ok=True)
        for key in self.remote.list("", "v*/version.json"):
            if not (self.root / key).exists():
                self.remote.download(key, self.root / key)

    def _push(self, before: dict[Path, tuple[int, int]]) -> None:
        if self.remote is None:
            return
        changed = [p for p, stamp in _file_stamps(self.root).items() if before.get(p) != stamp]
        for path in sorted(changed, key=_push_order):
            self.remote.upload(path, PurePosixPath(path.relative_to(self.root).as_posix()))

    def _fetch_version(self, version: str) -> None:
        if self.remote is None:
            return
        for key in self.remote.list(version, "*"):
            local = self.root / key
            if not local.exists():
                self.remote.download(key, local)

    # -- versions ----------------------------------------------------------------------------
    def list_versions(self) -> list[ModelVersion]:
        return [
            self._record(p.parent.name)
            for p in sorted(self.root.glob("v*/version.json"))
            if VERSION_ID.fullmatch(p.parent.name)
        ]

    def get(self, version: str) -> ModelVersion:
        version = checked_version(version)
        if not (self.root / version / "version.json").exists():
            known = ", ".join(v.version for v in self.list_versions()) or "none"
            raise RegistryError(f"no model version '{version}' in {self.root} (known: {known})")
        return self._record(version)

    def _record(self, version: str) -> ModelVersion:
        """A version's record, refused unless it is one this registry could have written:
        its id is its folder's, its model file a plain npz name in that folder, its hash hex."""
        path = self.root / version / "version.json"
        try:
            record = ModelVersion(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise RegistryError(f"{path} is not a readable version record ({exc})") from exc
        problems = [
            what
            for what, ok in (
                (f"version {record.version!r} is not its folder's", record.version == version),
                (
                    f"model_file {record.model_file!r} is not an npz file name",
                    isinstance(record.model_file, str) and MODEL_FILE.fullmatch(record.model_file),
                ),
                (
                    "sha256 is not a hex digest",
                    isinstance(record.sha256, str) and SHA256.fullmatch(record.sha256),
                ),
                (
                    "serving_files is not a map of plain file names to hex digests",
                    isinstance(record.serving_files, dict)
                    and all(
                        isinstance(name, str)
                        and SERVING_FILE.fullmatch(name)
                        and isinstance(digest, str)
                        and SHA256.fullmatch(digest)
                        for name, digest in record.serving_files.items()
                    ),
                ),
            )
            if not ok
        ]
        if problems:
            raise RegistryError(
                f"refusing {path}: {'; '.join(problems)}",
                hint="the registry was modified by hand or by something else; restore it",
            )
        return record

    def version_dir(self, version: str) -> Path:
        """The version's folder, with its files downloaded first from an object store."""
        version = checked_version(version)
        self._fetch_version(version)
        return self.root / version

    def serving_file(self, record: ModelVersion, name: str) -> Path:
        """The version's file ``name``, verified against the sha256 its record holds (a version
        whose record predates ``serving_files`` is returned unverified)."""
        path = self.version_dir(record.version) / name
        expected = record.serving_files.get(name)
        if expected is None:
            if record.serving_files:
                raise RegistryError(
                    f"version {record.version} has no registered file {name!r}",
                    hint="register the model again with the deploy task",
                )
            return path
        if not path.is_file():
            raise RegistryError(
                f"{path} is missing: version {record.version} was registered with it",
                hint="restore the version's files, or promote another version",
            )
        actual = sha256_file(path)
        if actual != expected:
            raise RegistryError(
                f"{path} has sha256 {actual[:12]}…, expected {expected[:12]}…: it was modified "
                "or replaced after it was published",
                hint="restore the registered file, or promote another version",
            )
        return path

    def register(
        self,
        model_file: Path,
        serving_files: dict[str, Path],
        *,
        model_type: str,
        metrics: dict[str, Any],
        data_hash: str | None,
        run_id: str,
        config: dict[str, Any] | None = None,
    ) -> tuple[ModelVersion, bool]:
        """Copy a model and what serving needs into a new version; (version, created).

        ``serving_files`` maps registry file names (``user_index.parquet``, the serving
        arrays' ``*.npy``...) to their source; each is hashed into the version's record."""
        if not MODEL_FILE.fullmatch(f"model{model_file.suffix}"):
            raise RegistryError(
                f"only npz models are registered (got {model_file.name})",
                hint="the service never unpickles: set tasks.training.config.model_format: npz",
            )
        for name in serving_files:
            if not SERVING_FILE.fullmatch(name):
                raise RegistryError(f"{name!r} is not a plain npy/npz/parquet file name")
        digest = sha256_file(model_file)
        with self._locked():
            for existing in self.list_versions():
                if existing.sha256 == digest:
                    return existing, False
            number = len(self.list_versions()) + 1
            version = f"v{number:04d}"
            staging = self.root / f".{version}-{time.time_ns()}"
            staging.mkdir(parents=True)
            target_name = f"model{model_file.suffix}"
            shutil.copyfile(model_file, staging / target_name)
            sidecar = model_file.with_name(model_file.name + ".sha256")
            if sidecar.exists():
                shutil.copyfile(sidecar, staging / f"{target_name}.sha256")
            hashes = {}
            for name, path in serving_files.items():
                shutil.copyfile(path, staging / name)
                hashes[name] = sha256_file(staging / name)
            record = ModelVersion(
                version,
                target_name,
                digest,
                model_type,
                metrics,
                data_hash,
                run_id,
                _now(),
                config or {},
                hashes,
            )
            write_json_atomic(staging / "version.json", asdict(record))
            staging.rename(self.root / version)  # the version appears complete or not at all
            return record, True

    # -- champion ----------------------------------------------------------------------------
    def champion(self) -> ModelVersion | None:
        path = self.root / "champion.json"
        try:
            pointer = _read(path, None)
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{path} is not readable JSON ({exc})") from exc
        if pointer is None:
            return None
        if not isinstance(pointer, dict) or "version" not in pointer:
            raise RegistryError(
                f"refusing {path}: it is not a champion pointer (an object with a 'version')",
                hint="promote a version again (approve, rollback or deploy) to rewrite it",
            )
        return self.get(pointer["version"])

    def history(self) -> list[dict[str, Any]]:
        return _read(self.root / "history.json", [])

    def promote(self, version: str, reason: str = "promoted") -> ModelVersion:
        record = self.get(version)
        with self._locked():
            history = self.history()
            history.append({"version": version, "at": _now(), "reason": reason})
            write_json_atomic(self.root / "history.json", history)
            write_json_atomic(
                self.root / "champion.json",
                {
                    "version": version,
                    "sha256": record.sha256,
                    "promoted_at": _now(),
                    "reason": reason,
                },
            )
            self._drop_pending(version)
        return record

    def rollback(self) -> tuple[str | None, ModelVersion]:
        """Restore the champion before the current one; (from version, to version)."""
        current = self.champion()
        previous = [
            h["version"]
            for h in self.history()
            if current is None or h["version"] != current.version
        ]
        if not previous:
            raise RegistryError(
                f"nothing to roll back to in {self.root}: there is no earlier champion",
                hint="promote a version first",
            )
        restored = self.promote(
            previous[-1], reason=f"rollback from {current.version if current else 'none'}"
        )
        return (current.version if current else None), restored

    # -- approvals ---------------------------------------------------------------------------
    def pending(self) -> list[dict[str, Any]]:
        return _read(self.root / "pending.json", [])

    def request_approval(self, version: str, reason: str) -> None:
        self.get(version)
        with self._locked():
            pending = [p for p in self.pending() if p["version"] != version]
            pending.append({"version": version, "requested_at": _now(), "reason": reason})
            write_json_atomic(self.root / "pending.json", pending)

    def approve(self, version: str) -> ModelVersion:
        if version not in {p["version"] for p in self.pending()}:
            waiting = ", ".join(p["version"] for p in self.pending()) or "none"
            raise RegistryError(
                f"version '{version}' is not awaiting approval (pending: {waiting})"
            )
        return self.promote(version, reason="approved")

    def _drop_pending(self, version: str) -> None:
        pending = [p for p in self.pending() if p["version"] != version]
        write_json_atomic(self.root / "pending.json", pending)
