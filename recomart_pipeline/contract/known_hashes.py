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
need two seconds) and the file's status did not change while it was read. Only files on a
local file system are kept: a network file system's client may serve cached attributes
(NFS: up to a minute) that hide another host's change, where reading the file again would
see it. Nothing is shared between processes: a resumed run, a worker process or a task's
own process hashes afresh.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from pathlib import Path
from typing import NamedTuple

# ctime ticks are at most 10 ms (HZ=100) and the clock they are read from lags the precise
# one by up to a tick: 50 ms is several ticks; file systems with whole-second times get 2 s.
_SETTLED_NS = 50_000_000
_SETTLED_COARSE_NS = 2_000_000_000
# A long-lived process (the model service, a code server) keeps at most this many; the
# oldest goes first. A run's artifacts are a few dozen files.
_MAX_KEPT = 4096
# File systems whose attributes the kernel itself keeps current (no client-side cache).
LOCAL_FILE_SYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", "f2fs", "bcachefs"}
)
_MOUNTINFO = Path("/proc/self/mountinfo")


class FileStatus(NamedTuple):
    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


def status_of(path: Path) -> FileStatus:
    """The file's identity and change times, as ``remember`` and ``known_sha256`` compare."""
    stat = os.stat(path)
    return FileStatus(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


_known: dict[tuple[int, int], tuple[FileStatus, str]] = {}
_lock = threading.Lock()
_now_ns = time.time_ns  # the clock ctimes are compared with (the kernel's realtime clock)


def file_system_types(mountinfo: str) -> dict[tuple[int, int], str]:
    """``(major, minor) -> type`` of every mount in a ``/proc/self/mountinfo`` text."""
    types: dict[tuple[int, int], str] = {}
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        numbers, kind = fields.split(), rest.split()
        if len(numbers) < 3 or not kind or ":" not in numbers[2]:
            continue
        major, _, minor = numbers[2].partition(":")
        if major.isdigit() and minor.isdigit():
            types[(int(major), int(minor))] = kind[0]
    return types


@functools.cache
def _is_local(device: int) -> bool:
    """Whether ``device`` is a mount of a local file system (unknown: no)."""
    try:
        types = file_system_types(_MOUNTINFO.read_text())
    except OSError:  # not Linux, or no /proc: nothing is kept
        return False
    return types.get((os.major(device), os.minor(device))) in LOCAL_FILE_SYSTEMS


def _settled(status: FileStatus, finished_ns: int) -> bool:
    coarse = status.ctime_ns % 1_000_000_000 == 0
    return finished_ns - status.ctime_ns > (_SETTLED_COARSE_NS if coarse else _SETTLED_NS)


def remember(path: Path, before: FileStatus, digest: str) -> None:
    """Keep ``digest`` for ``path`` if its status is still ``before`` (taken before the file
    was read), its last change is settled and it is on a local file system (see above)."""
    after = status_of(path)
    if after != before or not _settled(after, _now_ns()) or not _is_local(after.device):
        return
    with _lock:
        _known.pop((after.device, after.inode), None)
        _known[(after.device, after.inode)] = (after, digest)
        while len(_known) > _MAX_KEPT:
            del _known[next(iter(_known))]


def known_sha256(path: Path) -> str | None:
    """The digest this process took of ``path``, if the file has not changed since; else None."""
    status = status_of(path)
    with _lock:
        entry = _known.get((status.device, status.inode))
    if entry is None or entry[0] != status:
        return None
    return entry[1]
