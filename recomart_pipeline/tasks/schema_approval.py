"""Schema-change approval for ingested sources.

The first schema seen is recorded as approved. When a source's columns change (added,
removed, or retyped for typed formats like Parquet), ingestion still stores the raw data
but its ``schema_approved`` check fails — blocking everything downstream in ``block``
mode, only warning in ``warn`` mode — with the diff, until a person runs
``python -m recomart_pipeline approve-schema``. The spec keeps source/schema changes a
manual decision.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from recomart_pipeline.contract.errors import TaskError
from recomart_pipeline.contract.files import write_json_atomic
from recomart_pipeline.contract.task import CheckOutcome, CheckSpec, Severity

Mode = Literal["block", "warn", "off"]
CHECK = "schema_approved"
Schemas = dict[str, dict[str, str]]


def _severity(mode: Mode) -> Severity:
    return "ERROR" if mode == "block" else "WARN"


def check_spec(mode: Mode) -> list[CheckSpec]:
    if mode == "off":
        return []
    severity = _severity(mode)
    return [CheckSpec(CHECK, "source columns match the last approved schema", severity)]


def _folder(storage_root: Path, task: str) -> Path:
    return storage_root / "schemas" / task


def schema_diff(approved: Schemas, current: Schemas) -> dict[str, dict[str, Any]]:
    diff: dict[str, dict[str, Any]] = {}
    for table in sorted(set(approved) | set(current)):
        before, now = approved.get(table, {}), current.get(table, {})
        change = {
            "added": sorted(set(now) - set(before)),
            "removed": sorted(set(before) - set(now)),
            "retyped": {
                c: [before[c], now[c]]
                for c in sorted(set(before) & set(now))
                if before[c] != now[c]
            },
        }
        if any(change.values()):
            diff[table] = change
    return diff


def describe(diff: dict[str, dict[str, Any]]) -> str:
    parts = []
    for table, change in diff.items():
        bits = [f"+{c}" for c in change["added"]] + [f"-{c}" for c in change["removed"]]
        bits += [f"{c}: {a}→{b}" for c, (a, b) in change["retyped"].items()]
        parts.append(f"{table} ({', '.join(bits)})")
    return "; ".join(parts)


def review(
    storage_root: Path, task: str, run_id: str, mode: Mode, current: Schemas
) -> CheckOutcome | None:
    """Compare with the approved schema; record pending changes; the check's outcome."""
    if mode == "off":
        return None
    folder = _folder(storage_root, task)
    approved_path, pending_path = folder / "approved.json", folder / "pending.json"
    severity = _severity(mode)
    if not approved_path.exists():
        write_json_atomic(
            approved_path, {"schemas": current, "approved_by": "first run", "run_id": run_id}
        )
        return CheckOutcome(CHECK, True, severity, "first schema seen: recorded as approved")
    approved = json.loads(approved_path.read_text())["schemas"]
    diff = schema_diff(approved, current)
    if not diff:
        pending_path.unlink(missing_ok=True)
        return CheckOutcome(CHECK, True, severity, "schema unchanged")
    write_json_atomic(pending_path, {"schemas": current, "diff": diff, "run_id": run_id})
    return CheckOutcome(
        CHECK,
        False,
        severity,
        f"source schema changed: {describe(diff)}; review it and run "
        "`python -m recomart_pipeline approve-schema` to accept",
        {"diff": diff},
    )


def approve(storage_root: Path, task: str = "ingestion") -> dict[str, Any]:
    folder = _folder(storage_root, task)
    pending_path = folder / "pending.json"
    if not pending_path.exists():
        raise TaskError(f"no schema change is waiting for approval under {folder}")
    pending = json.loads(pending_path.read_text())
    write_json_atomic(
        folder / "approved.json",
        {
            "schemas": pending["schemas"],
            "approved_by": "approve-schema",
            "run_id": pending["run_id"],
        },
    )
    pending_path.unlink()
    return pending["diff"]
