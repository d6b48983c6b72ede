"""Pipeline storage in an object store (``s3://…`` and whatever else fsspec supports).

Tasks keep working on local files: numpy, pandas and the model code want real paths, and a
task retried on the same machine should not download its inputs twice. The object store is
the shared, durable copy; the local folder (``storage.cache_dir``) is a cache of it:

- a published checkpoint is uploaded file by file, then its ``latest`` pointer — readers
  that follow the pointer therefore always find complete outputs (one object PUT is atomic);
- a task on any machine downloads its inputs by the pointer and checks their sha256;
- the run manifest and the model registry's JSON state are read from the store before they
  change and written back after.

fsspec does the protocol work (credentials from the config or the standard environment
variables, e.g. ``AWS_ACCESS_KEY_ID``); this module adds the cache, the atomic download and
errors that say which URL failed and how to fix it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from recomart_pipeline.contract.errors import TaskError

if TYPE_CHECKING:
    import fsspec

    from recomart_pipeline.config import PipelineConfig


class ObjectStoreError(TaskError):
    """The object store could not be reached or refused a request (retried like a network
    error: outages and throttling are usually transient)."""

    error_class = "connection_error"


class ObjectStore:
    """One folder (``url``) in an object store; relative keys use ``/`` like the local layout.

    Picklable: only the URL and options travel to a task's child process; the filesystem
    object is made on first use there.
    """

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self._options = dict(options or {})

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "_options": self._options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:  # options hold credentials: never shown
        return f"ObjectStore({self.url!r})"

    def child(self, relative: str) -> ObjectStore:
        """The sub-folder ``relative`` as a store of its own (same connection settings)."""
        return ObjectStore(self.url_of(relative), self._options)

    @cached_property
    def _fs_and_root(self) -> tuple[fsspec.AbstractFileSystem, str]:
        try:
            import fsspec

            fs_and_root: tuple[fsspec.AbstractFileSystem, str] = fsspec.core.url_to_fs(
                self.url, **self._options
            )
            return fs_and_root
        except (ImportError, ValueError) as exc:
            protocol = self.url.split("://", 1)[0]
            raise ObjectStoreError(
                f"cannot open storage {self.url}: {exc}",
                hint=f"install the fsspec driver for '{protocol}://' (for s3: "
                "pip install 'recomart-pipeline[s3]') and check storage.object_store",
            ) from None

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return self._fs_and_root[0]

    def key(self, relative: str | PurePosixPath) -> str:
        return f"{self._fs_and_root[1].rstrip('/')}/{str(relative).lstrip('/')}"

    def url_of(self, relative: str | PurePosixPath) -> str:
        return f"{self.url}/{str(relative).lstrip('/')}"

    @contextmanager
    def _errors(self, action: str, relative: str | PurePosixPath) -> Iterator[None]:
        try:
            yield
        except ObjectStoreError:
            raise
        except FileNotFoundError:
            raise
        except Exception as exc:  # botocore, aiohttp, gcsfs… each has its own error types
            raise ObjectStoreError(
                f"could not {action} {self.url_of(relative)}: {type(exc).__name__}: {exc}",
                hint="check storage.base_dir, storage.object_store (endpoint_url, region) "
                "and the credentials in the environment (e.g. AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY); the bucket must exist",
            ) from None

    # -- single objects ----------------------------------------------------------------------
    def upload(self, local: Path, relative: str | PurePosixPath) -> None:
        with self._errors("upload to", relative):
            self.fs.put_file(str(local), self.key(relative))

    def download(self, relative: str | PurePosixPath, local: Path) -> bool:
        """Fetch one object into ``local`` atomically; False if there is no such object."""
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with self._errors("download", relative):
                self.fs.get_file(self.key(relative), str(partial))
        except FileNotFoundError:
            partial.unlink(missing_ok=True)
            return False
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.chmod(partial, 0o644)
        os.replace(partial, local)
        return True

    def read_json(self, relative: str | PurePosixPath) -> Any | None:
        try:
            with self._errors("read", relative):
                return json.loads(self.fs.cat_file(self.key(relative)))
        except FileNotFoundError:
            return None

    def write_json(self, relative: str | PurePosixPath, payload: Any) -> None:
        data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
        with self._errors("write", relative):
            self.fs.pipe_file(self.key(relative), data)

    def delete(self, relative: str | PurePosixPath) -> None:
        """Remove one object; one that is already gone is fine."""
        try:
            with self._errors("delete", relative):
                self.fs.rm_file(self.key(relative))
        except FileNotFoundError:
            return

    def exists(self, relative: str | PurePosixPath) -> bool:
        with self._errors("look up", relative):
            return bool(self.fs.exists(self.key(relative)))

    # -- folders -----------------------------------------------------------------------------
    def list(self, relative: str | PurePosixPath, pattern: str = "**") -> list[PurePosixPath]:
        """Keys under ``relative`` matching ``pattern``, relative to the store's folder."""
        base = self.key("").rstrip("/")
        with self._errors("list", relative):
            self.fs.invalidate_cache()
            found = self.fs.glob(f"{self.key(relative).rstrip('/')}/{pattern}")
        return sorted(PurePosixPath(str(k)).relative_to(base.lstrip("/")) for k in found)

    def upload_tree(self, local_dir: Path, relative: str | PurePosixPath) -> None:
        for path in sorted(local_dir.rglob("*")):
            if path.is_file():
                self.upload(path, PurePosixPath(relative) / path.relative_to(local_dir).as_posix())

    def check(self) -> None:
        """Fail early, with the URL and a hint, when the store cannot be used."""
        bucket = self.key("").strip("/").split("/", 1)[0]
        try:
            with self._errors("reach", ""):
                self.fs.ls(bucket, detail=False)
        except FileNotFoundError:
            raise ObjectStoreError(
                f"storage {self.url}: bucket or container '{bucket}' does not exist",
                hint="create it (e.g. aws s3 mb s3://" + bucket + ") or fix storage.base_dir",
            ) from None


def object_store_for(config: PipelineConfig) -> ObjectStore | None:
    """The configured object store, or None when storage is a local folder."""
    storage = config.settings.storage
    if not storage.is_object_store:
        return None
    return ObjectStore(storage.base_dir, storage.object_store.fsspec_options(storage.base_dir))
