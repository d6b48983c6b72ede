"""Pipeline and task metrics in Prometheus text format, for the node exporter's textfile
collector (``--collector.textfile.directory`` pointed at ``monitoring.metrics_dir``).

Rebuilt from the per-task metrics CSVs after every attempt, so it always shows each task's
latest attempt; written atomically so the exporter never reads half a file.
"""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path

from recomart_pipeline.contract.files import write_text_atomic
from recomart_pipeline.runtime.records import BASE_COLUMNS

TEXTFILE = "recomart_pipeline.prom"
STATUSES = ("SUCCESS", "FAILURE", "TIMEOUT")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _metric_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name.lower())
    return cleaned if not cleaned[:1].isdigit() else f"_{cleaned}"


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def render(pipeline: str, metrics_dir: Path) -> str:
    lines = [
        "# HELP recomart_task_duration_seconds Duration of the task's latest attempt.",
        "# TYPE recomart_task_duration_seconds gauge",
        "# HELP recomart_task_status 1 for the status of the task's latest attempt.",
        "# TYPE recomart_task_status gauge",
        "# HELP recomart_task_last_run_timestamp_seconds When the latest attempt ended.",
        "# TYPE recomart_task_last_run_timestamp_seconds gauge",
        "# HELP recomart_task_attempts_total Attempts recorded for the task.",
        "# TYPE recomart_task_attempts_total counter",
        "# HELP recomart_task_metric A numeric metric the task reported on its latest attempt.",
        "# TYPE recomart_task_metric gauge",
    ]
    for path in sorted(metrics_dir.glob("*.csv")):
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            continue
        last = rows[-1]
        labels = f'pipeline="{_label(pipeline)}",task="{_label(last["task"])}"'
        lines.append(
            f"recomart_task_duration_seconds{{{labels}}} {_number(last['duration_s']) or 0}"
        )
        for status in STATUSES:
            lines.append(
                f'recomart_task_status{{{labels},status="{status}"}} {int(last["status"] == status)}'
            )
        ended = datetime.fromisoformat(last["ts"]).timestamp()
        lines.append(f"recomart_task_last_run_timestamp_seconds{{{labels}}} {ended:.3f}")
        lines.append(f"recomart_task_attempts_total{{{labels}}} {len(rows)}")
        for key, value in last.items():
            number = _number(value)
            if key in BASE_COLUMNS or number is None:
                continue
            lines.append(f'recomart_task_metric{{{labels},name="{_metric_name(key)}"}} {number:g}')
    return "\n".join(lines) + "\n"


def write_textfile(pipeline: str, metrics_dir: Path) -> Path:
    target = metrics_dir / TEXTFILE
    write_text_atomic(target, render(pipeline, metrics_dir))
    return target
