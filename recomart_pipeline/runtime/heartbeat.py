"""Run-worker heartbeats, so a dead run worker can be told from a slow one.

Dagster's default run launcher does not notice a run whose process died (a SIGKILLed
``dagster job execute`` leaves the run STARTED forever, its task processes orphaned). Each
process that executes tasks of a run writes ``storage/runs/<run_id>/heartbeats/<pid>.json``
every few seconds with its host and the pids of its task child processes; the watchdog
reads them to decide that a run is dead and which orphans to kill.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from recomart_pipeline.contract.files import write_json_atomic

# Overridable so end-to-end tests of a dead worker need not wait 15 s.
INTERVAL_SECONDS = float(os.environ.get("RECOMART_HEARTBEAT_SECONDS", "5"))
_children: set[int] = set()
_children_lock = threading.Lock()
_beating: dict[tuple[str, str], threading.Thread] = {}


def register_child(pid: int) -> None:
    with _children_lock:
        _children.add(pid)


def unregister_child(pid: int) -> None:
    with _children_lock:
        _children.discard(pid)


def heartbeat_dir(storage_root: Path, run_id: str) -> Path:
    return storage_root / "runs" / run_id / "heartbeats"


def _beat(path: Path) -> None:
    with _children_lock:
        children = sorted(_children)
    write_json_atomic(
        path,
        {"pid": os.getpid(), "host": socket.gethostname(), "ts": time.time(), "children": children},
    )


def ensure_heartbeat(storage_root: Path, run_id: str) -> None:
    """Start (once per process and run) a daemon thread that keeps this process's beat fresh."""
    key = (str(storage_root), run_id)
    if key in _beating and _beating[key].is_alive():
        return
    path = heartbeat_dir(storage_root, run_id) / f"{os.getpid()}.json"
    _beat(path)

    def loop() -> None:
        while True:
            time.sleep(INTERVAL_SECONDS)  # the beat period itself, not a synchronisation wait
            try:
                _beat(path)
            except OSError:
                continue

    thread = threading.Thread(target=loop, name=f"heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    _beating[key] = thread


@dataclass(frozen=True)
class Beat:
    pid: int
    host: str
    ts: float
    children: list[int]

    def process_alive(self) -> bool:
        if self.host != socket.gethostname():
            return True  # another machine: we cannot tell, trust the timestamp only
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def read_beats(storage_root: Path, run_id: str) -> list[Beat]:
    beats = []
    for path in heartbeat_dir(storage_root, run_id).glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        beats.append(Beat(data["pid"], data["host"], data["ts"], list(data.get("children", []))))
    return beats


def run_is_dead(
    beats: list[Beat], now: float | None = None, stale_after: float = 3 * INTERVAL_SECONDS
) -> bool:
    """Every process of the run has stopped beating and (on this host) no longer exists."""
    if not beats:
        return False
    now = time.time() if now is None else now
    return all(now - beat.ts > stale_after and not beat.process_alive() for beat in beats)
