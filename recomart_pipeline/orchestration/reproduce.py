"""Re-run a recorded run with the config from its manifest and compare every output.

Tasks write only what they compute from their inputs, config, code and seeds (run ids,
times, durations, hosts and ports go to the manifest and the task's metrics/metadata), so
an unchanged run reproduces every output byte for byte and a hash comparison settles it.

A few outputs also depend on state outside the run, and a reproduction necessarily finds
that state changed by the original run itself: the model registry (the original promoted
the model; the reproduction finds it already champion) and the previous run (a reproduction's
previous run is the original). Those outputs are compared by their stable content, and the
report says so for each:

- JSON documents without their ``run_dependent`` fields (``contract.documents``);
- the report's Markdown and HTML without the "What changed" section
  (``reporting.render.stable_text``);
- the monitoring report not at all: it is nothing but the drift from the previous run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.contract.catalog import BUILTIN_PREFIX
from recomart_pipeline.contract.documents import Document
from recomart_pipeline.contract.task import TaskSpec
from recomart_pipeline.graph import TaskDependencyGraph
from recomart_pipeline.orchestration.execution import run_pipeline
from recomart_pipeline.reporting.render import CHANGES_TITLE, stable_text
from recomart_pipeline.runtime.object_store import object_store_for
from recomart_pipeline.runtime.records import read_manifest

Verdict = Literal["identical", "stable", "not_compared", "different", "missing"]
# Outputs of built-in tasks whose whole content is a comparison with the previous run.
HISTORY_ONLY: dict[tuple[str, str], str] = {
    ("monitoring", "monitoring_report"): "it is the drift from the previous run, and a "
    "reproduction's previous run is the original",
}
# Rendered outputs of built-in tasks with a history-dependent part, and how to cut it.
TEXT_VIEWS: dict[tuple[str, str], tuple[Callable[[str], str], str]] = {
    ("report", "report_md"): (stable_text, f'the "{CHANGES_TITLE}" section'),
    ("report", "report_html"): (stable_text, f'the "{CHANGES_TITLE}" section'),
}


@dataclass(frozen=True)
class OutputComparison:
    """One output of one task: its hash in each run and how they were compared."""

    task: str
    artifact: str
    original: str | None
    reproduced: str | None
    verdict: Verdict = "identical"
    note: str = ""

    @property
    def matches(self) -> bool:
        return self.verdict in ("identical", "stable", "not_compared")


@dataclass(frozen=True)
class ReproduceReport:
    original_run_id: str
    new_run_id: str
    run_succeeded: bool
    comparisons: list[OutputComparison]

    @property
    def identical(self) -> bool:
        return self.run_succeeded and all(c.matches for c in self.comparisons)

    def by_task(self) -> dict[str, list[OutputComparison]]:
        """The comparisons grouped by task, in the original run's task order."""
        grouped: dict[str, list[OutputComparison]] = {}
        for item in self.comparisons:
            grouped.setdefault(item.task, []).append(item)
        return grouped


def _manifest(config: PipelineConfig, run_id: str) -> dict[str, Any]:
    manifest = read_manifest(config.storage_root, run_id, object_store_for(config))
    if manifest is None:
        where = config.settings.storage.base_dir
        raise FileNotFoundError(f"no manifest for run '{run_id}' in {where}/runs/{run_id}")
    return manifest


def _outputs(manifest: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (task, name): artifact
        for task, entry in manifest["tasks"].items()
        for name, artifact in entry.get("outputs", {}).items()
    }


def _builtin(spec: TaskSpec | None) -> str | None:
    if spec is None or not (spec.reference or "").startswith(BUILTIN_PREFIX):
        return None
    return spec.name


def _document(spec: TaskSpec | None, artifact: str) -> type[Document] | None:
    for output in spec.outputs if spec else ():
        document = output.document
        if output.matches(artifact) and isinstance(document, type):
            return document if issubclass(document, Document) else None
    return None


def _compare_document(document: type[Document], before: Path, after: Path) -> tuple[bool, str]:
    """Are two copies of a document equal apart from its run-dependent fields? And a note."""
    ignored = set(document.run_dependent) | document.legacy_fields
    old, new = json.loads(before.read_text()), json.loads(after.read_text())
    if not isinstance(old, dict) or not isinstance(new, dict):
        return False, "not a JSON object"
    changed = sorted(k for k in (old.keys() | new.keys()) - ignored if old.get(k) != new.get(k))
    if changed:
        return False, f"differs in {', '.join(changed)}"
    by_reason: dict[str, list[str]] = {}
    for key, reason in document.run_dependent.items():
        if old.get(key) != new.get(key):
            by_reason.setdefault(reason, []).append(key)
    reasons = "; ".join(f"{', '.join(keys)} ({reason})" for reason, keys in by_reason.items())
    return True, f"same apart from {reasons}"


def _compare(
    task: str,
    artifact: str,
    spec: TaskSpec | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> OutputComparison:
    item = OutputComparison(
        task, artifact, before["sha256"] if before else None, after["sha256"] if after else None
    )
    if before is None or after is None:
        which = "original run" if before is None else "reproduction"
        return replace(item, verdict="missing", note=f"not written by the {which}")
    if item.original == item.reproduced:
        return item
    key = (_builtin(spec) or "", artifact)
    if key in HISTORY_ONLY:
        return replace(item, verdict="not_compared", note=f"not compared: {HISTORY_ONLY[key]}")
    different = replace(
        item,
        verdict="different",
        note=f"sha256 {str(item.original)[:12]}… → {str(item.reproduced)[:12]}…",
    )
    document = _document(spec, artifact)
    if key not in TEXT_VIEWS and (document is None or not document.run_dependent):
        return different
    old_path, new_path = Path(before["path"]), Path(after["path"])
    if not old_path.exists() or not new_path.exists():
        gone = f"{different.note}; {old_path if not old_path.exists() else new_path} is gone"
        return replace(different, note=f"{gone}, so its stable content cannot be compared")
    if document is not None:
        same, note = _compare_document(document, old_path, new_path)
    else:
        view, what = TEXT_VIEWS[key]
        same = view(old_path.read_text()) == view(new_path.read_text())
        note = (
            f"same apart from {what}, which compares with the previous run (for a "
            "reproduction: the original)"
            if same
            else f"differs also without {what}"
        )
    return replace(item, verdict="stable" if same else "different", note=note)


def reproduce_run(
    config: PipelineConfig,
    run_id: str,
    *,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> ReproduceReport:
    """Run again with the recorded effective config (notifications off) and compare outputs.

    ``progress`` receives the reproduction's progress lines as ``run`` prints them (short
    task events; whole with ``verbose``); without it Dagster's console shows warnings only.
    """
    original = _manifest(config, run_id)
    recorded = original["config"]
    recorded["notifications"]["enabled"] = False
    recorded["scheduling"]["enabled"] = False
    replay_path = (
        Path(original.get("config_path", config.path)).parent / f".reproduce-{run_id}.yaml"
    )
    replay_path.write_text(yaml.safe_dump(recorded, sort_keys=False))
    try:
        replay = PipelineConfig(replay_path)
        tasks = [t for t, e in original["tasks"].items() if e.get("status") == "SUCCESS"]
        report = run_pipeline(replay, tasks or None, progress=progress, quiet=True, verbose=verbose)
    finally:
        replay_path.unlink(missing_ok=True)
    assert report.run_id is not None, "a full (not incremental) run always creates a run"
    before = _outputs(original)
    after = _outputs(_manifest(config, report.run_id))
    order = TaskDependencyGraph(replay).get_execution_order()
    keys = sorted(
        set(before) | set(after),
        key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k),
    )
    comparisons = [
        _compare(
            task, name, replay.specs.get(task), before.get((task, name)), after.get((task, name))
        )
        for task, name in keys
    ]
    return ReproduceReport(run_id, report.run_id, report.success, comparisons)
