"""What a run leaves for operators: per-task metrics CSVs and the run manifest.

Both are written by the task runtime after every attempt, so they exist for runs started
from the UI, the daemon, ``dagster job execute`` and the CLI alike. The manifest is
updated under a file lock (tasks of one run may finish in parallel processes) and always
replaced atomically.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import platform
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recomart_pipeline.contract.files import write_json_atomic, write_text_atomic
from recomart_pipeline.contract.status import FAILED, TaskStatus
from recomart_pipeline.graph import TaskDependencyGraph
from recomart_pipeline.runtime.artifacts import Checkpoint
from recomart_pipeline.runtime.task_logging import git_sha

if TYPE_CHECKING:
    from recomart_pipeline.config import PipelineConfig
    from recomart_pipeline.runtime.object_store import ObjectStore

MANIFEST = "manifest.json"
BASE_COLUMNS = ["run_id", "ts", "task", "status", "attempt", "duration_s", "error_class"]


def _now() -> str:
    return datetime.now(UTC).isoformat()


@lru_cache(maxsize=1)
def installed_packages() -> tuple[str, ...]:
    """``pip freeze`` without a subprocess: name==version of every installed distribution."""
    found = {
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in metadata.distributions()
        if dist.metadata["Name"]
    }
    return tuple(sorted(found, key=str.lower))


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}


def append_metrics_row(metrics_dir: Path, task: str, row: dict[str, Any]) -> None:
    """Append one row to ``metrics/{task}.csv``; new metric names widen the header."""
    path = metrics_dir / f"{task}.csv"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_suffix(".csv.lock")):
        rows: list[dict[str, Any]] = []
        columns = list(BASE_COLUMNS)
        if path.exists():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                columns = list(reader.fieldnames or columns)
                rows = list(reader)
        if any(
            r.get("run_id") == row["run_id"] and r.get("attempt") == str(row["attempt"])
            for r in rows
        ):
            return  # at-least-once execution: the same attempt is recorded once
        columns += [key for key in row if key not in columns]
        rows.append(row)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(path, buffer.getvalue())


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _artifact_map(checkpoint: Checkpoint) -> dict[str, dict[str, Any]]:
    return {
        name: {"path": str(rec.path), "sha256": rec.sha256, "size_bytes": rec.size_bytes}
        for name, rec in sorted(checkpoint.artifacts.items())
    }


def _new_manifest(config: PipelineConfig, run_id: str, first_duration_s: float) -> dict[str, Any]:
    started = datetime.now(UTC).timestamp() - first_duration_s
    return {
        "run_id": run_id,
        "pipeline": config.name,
        "environment": config.settings.pipeline.environment,
        "engine": config.settings.execution.engine,
        # Per task: its own tasks.<name>.engine, else execution.engine where it runs on it.
        "engines": {name: config.engine_of(name) for name in config.settings.tasks},
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "config_path": str(config.path),
        "config_hash": config.config_hash,
        "overrides": config.safe_overrides,
        "config": config.to_dict(),
        "environment_info": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "host": socket.gethostname(),
            "git_sha": git_sha(config.project_root),
            "packages": list(installed_packages()),
        },
        "tasks": {},
    }


def _load_manifest(
    config: PipelineConfig,
    manifest_path: Path,
    run_id: str,
    duration_s: float,
    remote: ObjectStore | None,
) -> dict[str, Any]:
    if remote is not None:
        remote.download(f"runs/{run_id}/{MANIFEST}", manifest_path)
    if manifest_path.exists():
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        return manifest
    return _new_manifest(config, run_id, duration_s)


def _save_manifest(
    manifest_path: Path, run_id: str, manifest: dict[str, Any], remote: ObjectStore | None
) -> None:
    manifest["updated_at"] = _now()
    write_json_atomic(manifest_path, manifest)
    if remote is not None:
        remote.upload(manifest_path, f"runs/{run_id}/{MANIFEST}")


def record_start(
    config: PipelineConfig,
    storage_root: Path,
    run_id: str,
    task: str,
    *,
    attempt: int,
    planned: Sequence[str] = (),
    remote: ObjectStore | None = None,
) -> None:
    """Mark ``task`` RUNNING in the run manifest; the run's other ``planned`` tasks that
    have not started yet are PENDING, so ``runs show`` tells waiting from running."""
    manifest_path = storage_root / "runs" / run_id / MANIFEST
    with _locked(manifest_path.with_suffix(".lock")):
        manifest = _load_manifest(config, manifest_path, run_id, 0.0, remote)
        for name in planned:
            manifest["tasks"].setdefault(name, {"status": TaskStatus.PENDING, "attempts": []})
        entry = manifest["tasks"].setdefault(task, {"attempts": []})
        entry.update(status=TaskStatus.RUNNING, attempt=attempt, started_at=_now())
        _save_manifest(manifest_path, run_id, manifest, remote)


def record_attempt(
    config: PipelineConfig,
    storage_root: Path,
    run_id: str,
    task: str,
    *,
    attempt: int,
    status: str,
    duration_s: float,
    error_class: str | None = None,
    error: str | None = None,
    upstream: dict[str, Checkpoint] | None = None,
    checkpoint: Checkpoint | None = None,
    metrics: dict[str, Any] | None = None,
    remote: ObjectStore | None = None,
    retry_in_s: float | None = None,
) -> None:
    """Record one attempt in the run manifest and the task's metrics CSV.

    A failed attempt followed by another leaves the task RETRYING (with the wait); a final
    failure turns the run's PENDING tasks that can no longer start into SKIPPED, with why.

    With an object store the manifest there is read first and written back after, so tasks
    of one run on different machines add to the same manifest. (The file lock serialises
    this machine's writers only; two machines finishing in the same instant could lose one
    entry, which the next attempt record of that task restores.)
    """
    manifest_path = storage_root / "runs" / run_id / MANIFEST
    with _locked(manifest_path.with_suffix(".lock")):
        manifest = _load_manifest(config, manifest_path, run_id, duration_s, remote)
        entry = manifest["tasks"].setdefault(task, {"attempts": []})
        entry["attempts"].append(
            {
                "attempt": attempt,
                "status": status,
                "duration_s": round(duration_s, 4),
                "error_class": error_class,
                "error": error,
                "finished_at": _now(),
            }
        )
        entry.update(
            status=status if retry_in_s is None else TaskStatus.RETRYING,
            attempts_count=len(entry["attempts"]),
            duration_s=round(duration_s, 4),
            error_class=error_class,
        )
        if retry_in_s is not None:
            entry["retry_in_s"] = round(retry_in_s, 3)
        else:
            entry.pop("retry_in_s", None)
            if status in FAILED:
                _skip_blocked(config, manifest["tasks"], task)
        if upstream is not None:
            entry["inputs"] = {dep: _artifact_map(cp) for dep, cp in sorted(upstream.items())}
            # Which run each input came from, and any failed-check output read on request.
            entry["input_runs"] = {dep: cp.run_id for dep, cp in sorted(upstream.items())}
            overridden = {dep: list(cp.blocked) for dep, cp in upstream.items() if cp.blocked}
            if overridden:
                entry["inputs_with_failed_checks"] = overridden
        if checkpoint is not None:
            entry["outputs"] = _artifact_map(checkpoint)
            entry["metrics"] = checkpoint.metrics
            if checkpoint.blocked:
                entry["failed_blocking_checks"] = list(checkpoint.blocked)
        _save_manifest(manifest_path, run_id, manifest, remote)
    row = {
        "run_id": run_id,
        "ts": _now(),
        "task": task,
        "status": status,
        "attempt": attempt,
        "duration_s": round(duration_s, 4),
        "error_class": error_class or "",
        **_scalar_metrics(metrics or {}),
    }
    append_metrics_row(config.resolve_path(config.settings.monitoring.metrics_dir), task, row)


def _skip_blocked(config: PipelineConfig, tasks: dict[str, Any], failed: str) -> None:
    """PENDING tasks that will not start now that ``failed`` failed for good: its
    dependents, and under fail-fast (``execution.continue_on_error: false``) all of them."""
    fail_fast = not config.settings.execution.continue_on_error
    downstream = TaskDependencyGraph(config).get_downstream(failed)
    for name, entry in tasks.items():
        if entry.get("status") != TaskStatus.PENDING:
            continue
        if name in downstream:
            entry.update(status=TaskStatus.SKIPPED, reason=f"dependency '{failed}' failed")
        elif fail_fast:
            entry.update(
                status=TaskStatus.SKIPPED, reason=f"not started (fail-fast): '{failed}' failed"
            )


def read_manifest(
    storage_root: Path, run_id: str, remote: ObjectStore | None = None
) -> dict[str, Any] | None:
    """One run's manifest (from the object store when there is one), or None."""
    path = storage_root / "runs" / run_id / MANIFEST
    if remote is not None:
        remote.download(f"runs/{run_id}/{MANIFEST}", path)
    return json.loads(path.read_text()) if path.exists() else None


def load_manifests(storage_root: Path, remote: ObjectStore | None = None) -> list[dict[str, Any]]:
    """Every run manifest under the storage root, newest first."""
    if remote is not None:
        for key in remote.list("runs", f"*/{MANIFEST}"):
            remote.download(key, storage_root / key)
    manifests = []
    for path in (storage_root / "runs").glob(f"*/{MANIFEST}"):
        try:
            manifests.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(manifests, key=lambda m: m.get("started_at", ""), reverse=True)
