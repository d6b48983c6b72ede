"""Leftovers of killed tasks: staging folders and retired output folders nobody will finish.

A task writes into ``runs/<run>/.staging/<task>-<id>`` and publishing renames it into place,
so a task killed mid-way (SIGKILL, power loss, OOM killer) leaves its half-written folder
behind; so does a publish killed between its two renames (``runs/<run>/.<task>-retired-*``).
They are never read, but they hold disk. A folder is a leftover once its run has no live
process: every heartbeat of the run is stale and (on this host) its process is gone, or,
for a run that never beat, the folder has not changed for longer than a beat could lag.
The next run and ``housekeeping`` remove them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from recomart_pipeline.runtime.heartbeat import INTERVAL_SECONDS, read_beats, run_is_dead

STALE_AFTER_SECONDS = 3 * INTERVAL_SECONDS
_cleaned: set[tuple[str, str]] = set()


def _run_finished(root: Path, run_id: str, folder: Path, now: float) -> bool:
    beats = read_beats(root, run_id)
    if beats:
        return run_is_dead(beats, now, STALE_AFTER_SECONDS)
    return now - folder.stat().st_mtime > STALE_AFTER_SECONDS


def stale_staging(
    root: Path, current_run: str | None = None, now: float | None = None
) -> Iterator[Path]:
    """Staging and retired folders of runs (other than ``current_run``) that stopped."""
    now = time.time() if now is None else now
    for run_dir in sorted((root / "runs").glob("*")):
        if run_dir.name == current_run or not run_dir.is_dir():
            continue
        leftovers = [*run_dir.glob(".staging/*"), *run_dir.glob(".*-retired-*")]
        if leftovers and _run_finished(root, run_dir.name, leftovers[0], now):
            yield from leftovers


def remove_stale_staging(root: Path, current_run: str | None = None) -> list[Path]:
    """Delete the leftovers (once per process and run when called from a task)."""
    key = (str(root), current_run or "")
    if current_run is not None and key in _cleaned:
        return []
    _cleaned.add(key)
    removed = []
    for folder in list(stale_staging(root, current_run)):
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
