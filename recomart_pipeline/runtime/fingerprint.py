"""Fingerprints of data sources, so a sensor can tell "new or changed data" from "same data".

Local files, directories and globs are fingerprinted from names, sizes and content hashes
(so copying the same file in again is not "new data"); files over CONTENT_HASH_LIMIT bytes
use their modification time instead of their content, to keep each evaluation cheap. An
http(s) URL is fingerprinted from a HEAD request's ETag, Last-Modified and Content-Length. The fingerprint is the sensor's run key, so the same data
never triggers a second run.
"""

from __future__ import annotations

import glob
import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from recomart_pipeline.contract.files import sha256_file

HEAD_TIMEOUT_SECONDS = 10.0
CONTENT_HASH_LIMIT = 256 * 1024 * 1024


def _local_entries(pattern: str, root: Path) -> list[str]:
    path = Path(pattern)
    resolved = path if path.is_absolute() else root / path
    if resolved.is_dir():
        files = sorted(p for p in resolved.rglob("*") if p.is_file() and not p.name.startswith("."))
    else:
        files = sorted(Path(p) for p in glob.glob(str(resolved)) if Path(p).is_file())
    entries = []
    for file in files:
        stat = file.stat()
        identity = sha256_file(file) if stat.st_size <= CONTENT_HASH_LIMIT else stat.st_mtime_ns
        entries.append(f"{file}|{stat.st_size}|{identity}")
    return entries or [f"{resolved}|missing"]


def _url_entry(url: str) -> str:
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=HEAD_TIMEOUT_SECONDS) as response:
        headers = response.headers
        parts = [headers.get("ETag"), headers.get("Last-Modified"), headers.get("Content-Length")]
    if not any(parts):
        raise ValueError(f"{url} sends neither ETag, Last-Modified nor Content-Length")
    return f"{url}|" + "|".join(p or "" for p in parts)


def source_fingerprint(sources: list[str], project_root: Path) -> str:
    """One hash over every source; raises OSError/URLError when a source can't be reached."""
    entries: list[str] = []
    for source in sources:
        if source.startswith(("http://", "https://")):
            entries.append(_url_entry(source))
        else:
            entries.extend(_local_entries(source, project_root))
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:32]
