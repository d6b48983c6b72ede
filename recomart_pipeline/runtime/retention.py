"""Retention: delete per-run task outputs older than their kind's age limit, and the
half-written folders of killed tasks (runtime.staging) whatever their age.

Never deleted: the checkpoint each ``latest/{task}.json`` points at, and every artifact that
a run which is still kept read or wrote (its manifest lists them), so a kept run can always
be inspected and reproduced. A run folder whose task outputs are all gone is removed with
its manifest.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recomart_pipeline.runtime.artifacts import RESULT_FILE
from recomart_pipeline.runtime.records import MANIFEST
from recomart_pipeline.runtime.staging import stale_staging

if TYPE_CHECKING:
    from recomart_pipeline.config import PipelineConfig

DAY = 86400.0


@dataclass(frozen=True)
class RetentionAction:
    path: Path
    task: str
    age_days: float
    action: str  # "delete" or "keep: <reason>"


def _protected_dirs(root: Path, kept_runs: set[str]) -> dict[Path, str]:
    protected: dict[Path, str] = {}
    for pointer in (root / "latest").rglob("*.json"):
        try:
            data = json.loads(pointer.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        protected[root / "runs" / data["run_id"] / data["task"]] = "latest checkpoint"
    for run_id in kept_runs:
        manifest = root / "runs" / run_id / MANIFEST
        if not manifest.exists():
            continue
        for entry in json.loads(manifest.read_text()).get("tasks", {}).values():
            for artifacts in entry.get("inputs", {}).values():
                for artifact in artifacts.values():
                    protected.setdefault(
                        Path(artifact["path"]).parent, f"used by kept run {run_id}"
                    )
    return protected


def plan_retention(config: PipelineConfig, now: float | None = None) -> list[RetentionAction]:
    """Decide, for every per-run task output folder, whether it is deleted or kept (and why)."""
    now = time.time() if now is None else now
    root = config.storage_root
    retention = config.settings.retention
    folders: list[tuple[Path, str, str, float]] = []
    for result in (root / "runs").glob(f"*/*/{RESULT_FILE}"):
        folder = result.parent
        age = (now - result.stat().st_mtime) / DAY
        folders.append((folder, folder.parent.name, folder.name, age))
    kept_runs = {run for _, run, task, age in folders if age <= retention.days_for(task)}
    protected = _protected_dirs(root, kept_runs)
    actions = []
    for folder, _, task, age in sorted(folders):
        limit = retention.days_for(task)
        if age <= limit:
            action = f"keep: younger than {limit:g} days"
        elif folder in protected or any(folder == p or p.is_relative_to(folder) for p in protected):
            action = f"keep: {protected.get(folder, 'still referenced')}"
        else:
            action = "delete"
        actions.append(RetentionAction(folder, task, round(age, 2), action))
    for folder in stale_staging(root, now=now):
        age = (now - folder.stat().st_mtime) / DAY
        actions.append(RetentionAction(folder, ".staging", round(age, 2), "delete"))
    return actions


def apply_retention(
    config: PipelineConfig, actions: list[RetentionAction], now: float | None = None
) -> list[Path]:
    """Delete what ``plan_retention`` marked; drop old run folders left without outputs."""
    now = time.time() if now is None else now
    retention = config.settings.retention
    shortest = min([retention.default_days, *retention.by_task.values()]) * DAY
    deleted = []
    for item in actions:
        if item.action == "delete":
            shutil.rmtree(item.path, ignore_errors=True)
            deleted.append(item.path)
    for run_dir in (config.storage_root / "runs").glob("*"):
        # A run still in progress has no outputs yet either: only runs whose manifest was
        # last written long ago go.
        manifest = run_dir / MANIFEST
        last_write = (manifest if manifest.exists() else run_dir).stat().st_mtime
        too_old = now - last_write > shortest
        if run_dir.is_dir() and too_old and not any(run_dir.glob(f"*/{RESULT_FILE}")):
            shutil.rmtree(run_dir, ignore_errors=True)
            deleted.append(run_dir)
    return deleted
