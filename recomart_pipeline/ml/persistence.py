"""Versioned, hash-checked model files.

The default format is one ``.npz`` (a zip of ``.npy`` arrays, as ``np.savez`` writes it): the
model's state arrays plus a JSON header (format version, model type, hyper-parameters, index
sizes, caller metadata) stored as a uint8 array, read back with ``allow_pickle=False`` so
loading a file can never run code.

The same model always gives the same bytes, so a file's SHA-256 identifies the model itself:
``reproduce`` can tell an unchanged run from a changed one, and the registry recognises a model
it already holds. So nothing about the moment of writing goes in: no creation time or run id
in the header (serialised with sorted keys), members in a fixed order (``np.savez`` opens each
entry by name, so zip gives it its fixed default date, 1980-01-01). When and by which run a
model was written is recorded in the run's manifest and the registry, not in the file.

``model_format: pickle`` (from the user guide) is supported for compatibility, but unpickling
untrusted bytes executes code, so a pickle is only ever loaded after its SHA-256 matched a
known hash: the ``<file>.sha256`` sidecar written next to it, or ``expected_sha256`` (usually
taken from the checkpoint or the model registry). Without either it is refused.

Both formats carry the same payload (header + arrays), so the loaded model is rebuilt and
shape-checked by the same ``Recommender.from_arrays`` path.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from recomart_pipeline.contract.errors import SchemaError, UpstreamArtifactError
from recomart_pipeline.contract.files import atomic_path, write_text_atomic
from recomart_pipeline.ml.base import Recommender
from recomart_pipeline.ml.models import get_model_class

ModelFormat = Literal["npz", "pickle"]
FORMAT_NAME = "recomart-model"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
HEADER_KEY = "__header__"
FILE_SUFFIX: dict[str, str] = {"npz": ".npz", "pickle": ".pkl"}
_ZIP_MAGIC = b"PK\x03\x04"
_HASH_CHUNK = 1 << 20


class ModelIntegrityError(UpstreamArtifactError):
    """A model file's bytes do not match the hash it was published with (or it has none)."""


class ModelFormatError(SchemaError):
    """A model file is not one this version can read (foreign, newer or damaged)."""


def sidecar_path(path: Path) -> Path:
    """Where the ``sha256sum``-style hash of a pickled model lives."""
    return path.with_name(path.name + ".sha256")


def model_header(model: Recommender, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The self-description stored in every model file (nothing time- or run-dependent)."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_type": model.model_type,
        "params": model.params.model_dump(mode="json"),
        "n_users": model.n_users,
        "n_items": model.n_items,
        "numpy_version": np.__version__,
        "metadata": metadata or {},
    }


def save_model(
    model: Recommender,
    path: str | Path,
    *,
    model_format: ModelFormat = "npz",
    metadata: dict[str, Any] | None = None,
) -> str:
    """Write ``model`` atomically to ``path``; return the file's SHA-256 (hex).

    ``pickle`` also writes ``<path>.sha256``; the model file is replaced first, so a crash in
    between leaves a pickle without a valid sidecar, which ``load_model`` refuses.
    """
    path = Path(path)
    if model_format not in FILE_SUFFIX:
        raise ValueError(f"model_format must be 'npz' or 'pickle', got {model_format!r}")
    header = model_header(model, metadata)
    arrays = model.to_arrays()
    if HEADER_KEY in arrays:
        raise ValueError(f"model state may not use the reserved array name {HEADER_KEY!r}")
    with atomic_path(path) as tmp, tmp.open("w+b") as handle:
        _write_payload(handle, model_format, header, arrays)
        digest = _sha256_from_start(handle)
    if model_format == "pickle":
        write_text_atomic(sidecar_path(path), f"{digest}  {path.name}\n")
    return digest


def _write_payload(
    handle: BinaryIO,
    model_format: ModelFormat,
    header: dict[str, Any],
    arrays: dict[str, np.ndarray],
) -> None:
    """Serialise straight into the open temporary file, never into a buffer: a model's
    arrays can be most of the memory there is (EASE's n x n weights: 2.5 GB at 25,000
    items), and a buffer plus its ``getvalue()`` copy tripled the peak of a save."""
    if model_format == "npz":
        header_json = json.dumps(header, sort_keys=True).encode("utf-8")
        members = {HEADER_KEY: np.frombuffer(header_json, dtype=np.uint8), **arrays}
        # numpy's stub types **kwds next to allow_pickle: bool, so mypy matches a str-keyed
        # dict of arrays against that flag too; every key here is an array name.
        np.savez(handle, **members)  # type: ignore[arg-type]
    else:
        pickle.dump({"header": header, "arrays": arrays}, handle, protocol=5)


def _sha256_from_start(handle: BinaryIO) -> str:
    """The SHA-256 of everything written to ``handle``, read back a chunk at a time.

    Not hashed as the bytes pass: ``zipfile`` writes each member's local header with a zero
    CRC and size, then seeks back to fill them in once the member is written, so the first
    bytes of an npz are final only after the last member; re-reading the (page-cached) file
    costs one pass and no memory. The handle is the private temporary file about to be
    renamed into place, so these are exactly the bytes that get published.
    """
    handle.flush()
    handle.seek(0)
    digest = hashlib.sha256()
    while chunk := handle.read(_HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _read_sidecar(path: Path) -> str | None:
    sidecar = sidecar_path(path)
    if not sidecar.exists():
        return None
    fields = sidecar.read_text().split()
    return fields[0].lower() if fields else ""


def _verified_bytes(path: Path, expected_sha256: str | None) -> tuple[bytes, bool]:
    """The file's bytes (hashed once, then parsed from memory) and whether it is a pickle."""
    if not path.exists():
        raise UpstreamArtifactError(
            f"model file {path} does not exist", hint="re-run the training task that writes it"
        )
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and actual != expected_sha256.lower():
        raise ModelIntegrityError(
            f"model file {path} has sha256 {actual[:12]}…, expected {expected_sha256[:12]}…: "
            "it was modified or replaced after it was published",
            hint="re-run training (or restore the registered file) instead of editing it",
        )
    is_pickle = not data.startswith(_ZIP_MAGIC)
    if is_pickle:
        recorded = _read_sidecar(path)
        if recorded is None and expected_sha256 is None:
            raise ModelIntegrityError(
                f"refusing to unpickle {path}: no {sidecar_path(path).name} sidecar and no "
                "expected sha256 to verify it against (unpickling runs arbitrary code)",
                hint="pass expected_sha256 from the checkpoint, or use model_format: npz",
            )
        if recorded is not None and recorded != actual:
            raise ModelIntegrityError(
                f"refusing to unpickle {path}: its sha256 {actual[:12]}… does not match the "
                f"sidecar's {recorded[:12]}…",
                hint="the file was modified after training; re-run the training task",
            )
    return data, is_pickle


def _parse(
    data: bytes, is_pickle: bool, path: Path
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        if is_pickle:
            payload = pickle.loads(data)  # safe only because _verified_bytes checked the hash
            return dict(payload["header"]), dict(payload["arrays"])
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(arrays.pop(HEADER_KEY).tobytes().decode("utf-8"))
    except (
        KeyError,
        TypeError,
        ValueError,
        OSError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as exc:
        raise ModelFormatError(
            f"{path} is not a readable model file ({type(exc).__name__}: {exc})",
            hint="it must be written by recomart_pipeline.ml.persistence.save_model",
        ) from exc
    return header, arrays


def read_header(path: str | Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """A model file's header (type, params, sizes, metadata) after the same checks as load."""
    path = Path(path)
    header, _ = _parse(*_verified_bytes(path, expected_sha256), path)
    _check_header(header, path)
    return header


def _check_header(header: dict[str, Any], path: Path) -> None:
    if header.get("format") != FORMAT_NAME:
        raise ModelFormatError(
            f"{path} is not a {FORMAT_NAME} file (format={header.get('format')!r})"
        )
    version = header.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise ModelFormatError(
            f"{path} uses model format version {version!r}; this version reads "
            f"{sorted(SUPPORTED_VERSIONS)}",
            hint="upgrade recomart-pipeline, or re-train the model with this version",
        )


def load_model(
    path: str | Path, expected_sha256: str | None = None, *, allow_pickle: bool = True
) -> Recommender:
    """Load a model written by ``save_model``, verifying its hash before parsing it.

    Raises ModelIntegrityError on a hash mismatch (or a pickle with no hash to check) and
    ModelFormatError for unknown format versions, model types or malformed state. With
    ``allow_pickle=False`` (the model service: its registry is only as trustworthy as the
    folder it lives in, and a hash read from the same folder proves nothing) anything but the
    npz format is refused before a byte of it is interpreted.
    """
    path = Path(path)
    data, is_pickle = _verified_bytes(path, expected_sha256)
    if is_pickle and not allow_pickle:
        raise ModelIntegrityError(
            f"refusing to load {path}: it is not an npz model file, and this reader never "
            "unpickles (unpickling runs arbitrary code)",
            hint="deploy models in the npz format (tasks.training.config.model_format: npz)",
        )
    header, arrays = _parse(data, is_pickle, path)
    _check_header(header, path)
    try:
        cls = get_model_class(str(header.get("model_type")))
        return cls.from_arrays(
            header["params"], int(header["n_users"]), int(header["n_items"]), arrays
        )
    except (KeyError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ModelFormatError(
            f"{path} does not hold a valid model: {exc}",
            hint="re-train the model with this version of recomart-pipeline",
        ) from exc
