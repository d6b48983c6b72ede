"""The sha256 of files this process hashed itself, kept while the file provably did not change.

A run in one process (Dagster's in-process executor, ``run``) hashes every output when it is
published and again every time a later task reads it (``verify_artifact``): at 20M events
that was ~2.7 s of hashing in the parent for files it had hashed seconds before (the
training features, the model, the serving arrays, read by three or four tasks each).

A digest is reused only while the file's inode, size, mtime and ctime are what they were
when it was hashed. Any write, truncation, ``utime`` or replacement changes the ctime, which
no unprivileged process can set back. The one gap would be a change within the same clock
tick as the file's last legitimate write, so a digest is kept only when the hash finished
well after that write (``_SETTLED_NS``; whole-second ctimes, as some file systems keep them,
need two seconds) and the file's status did not change while it was read. Nothing is shared
between processes: a resumed run, a worker process or a task's own process hashes afresh.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import NamedTuple

# ctime ticks are at most 10 ms (HZ=100) and the clock they are read from lags the precise
# one by up to a tick: 50 ms is several ticks; file systems with whole-second times get 2 s.
_SETTLED_NS = 50_000_000
_SETTLED_COARSE_NS = 2_000_000_000


class _Status(NamedTuple):
    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


def _status(path: Path) -> _Status:
    stat = os.stat(path)
    return _Status(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


_known: dict[tuple[int, int], tuple[_Status, str]] = {}
_lock = threading.Lock()
_now_ns = time.time_ns  # the clock ctimes are compared with (the kernel's realtime clock)


def _settled(status: _Status, finished_ns: int) -> bool:
    coarse = status.ctime_ns % 1_000_000_000 == 0
    return finished_ns - status.ctime_ns > (_SETTLED_COARSE_NS if coarse else _SETTLED_NS)


def remember(path: Path, before: _Status, digest: str) -> None:
    """Keep ``digest`` for ``path`` if its status is still ``before`` (taken before the file
    was read) and its last change is settled (see the module docstring)."""
    after = _status(path)
    if after == before and _settled(after, _now_ns()):
        with _lock:
            _known[(after.device, after.inode)] = (after, digest)


def status_of(path: Path) -> _Status:
    """The file's status now: what ``remember`` compares against after the read."""
    return _status(path)


def known_sha256(path: Path) -> str | None:
    """The digest this process took of ``path``, if the file has not changed since; else None."""
    status = _status(path)
    with _lock:
        entry = _known.get((status.device, status.inode))
    if entry is None or entry[0] != status:
        return None
    return entry[1]
