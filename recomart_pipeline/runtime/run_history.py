"""Run history from the manifests: the ``runs`` CLI listing and the exported run-history note."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recomart_pipeline.contract.status import FAILED, TaskStatus

IN_PROGRESS = {TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.RETRYING}


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    state: str
    started_at: str
    duration_s: float | None
    failed_task: str
    error_class: str

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> RunSummary:
        tasks = manifest.get("tasks", {})
        failed = [(name, t) for name, t in tasks.items() if t.get("status") in FAILED]
        running = any(t.get("status") in IN_PROGRESS for t in tasks.values())
        started = manifest.get("started_at", "")
        updated = manifest.get("updated_at", started)
        try:
            duration = (
                datetime.fromisoformat(updated) - datetime.fromisoformat(started)
            ).total_seconds()
        except ValueError:
            duration = None
        return cls(
            run_id=manifest.get("run_id", "?"),
            state=TaskStatus.FAILURE
            if failed
            else (TaskStatus.RUNNING if running else TaskStatus.SUCCESS),
            started_at=started,
            duration_s=duration,
            failed_task=failed[0][0] if failed else "",
            error_class=(failed[0][1].get("error_class") or "") if failed else "",
        )


def summaries(manifests: list[dict[str, Any]]) -> list[RunSummary]:
    return [RunSummary.from_manifest(m) for m in manifests]


def _cells(summary: RunSummary) -> list[str]:
    duration = f"{summary.duration_s:.2f}" if summary.duration_s is not None else ""
    return [
        summary.run_id,
        summary.state,
        summary.started_at,
        duration,
        summary.failed_task,
        summary.error_class,
    ]


HEADER = ["run_id", "state", "started_at", "duration_s", "failed_task", "error_class"]


def export_csv(rows: list[RunSummary]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(_cells(r) for r in rows)
    return buffer.getvalue()


def export_markdown(rows: list[RunSummary]) -> str:
    lines = [
        "# Run history",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def format_table(rows: list[RunSummary]) -> str:
    lines = [f"{'run_id':<38} {'state':<8} {'started_at':<33} {'duration':>9}  failed task"]
    for row in rows:
        duration = f"{row.duration_s:.1f}s" if row.duration_s is not None else "-"
        failed = f"{row.failed_task} ({row.error_class})" if row.failed_task else ""
        lines.append(
            f"{row.run_id:<38} {row.state:<8} {row.started_at:<33} {duration:>9}  {failed}"
        )
    return "\n".join(lines)
