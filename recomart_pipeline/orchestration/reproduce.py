"""Re-run a recorded run with the config from its manifest and compare every output hash."""

from dataclasses import dataclass
from pathlib import Path

import yaml

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.orchestration.execution import run_pipeline
from recomart_pipeline.runtime.object_store import object_store_for
from recomart_pipeline.runtime.records import read_manifest


@dataclass(frozen=True)
class OutputComparison:
    task: str
    artifact: str
    original: str | None
    reproduced: str | None

    @property
    def matches(self) -> bool:
        return self.original is not None and self.original == self.reproduced


@dataclass(frozen=True)
class ReproduceReport:
    original_run_id: str
    new_run_id: str
    run_succeeded: bool
    comparisons: list[OutputComparison]

    @property
    def identical(self) -> bool:
        return self.run_succeeded and all(c.matches for c in self.comparisons)


def _manifest(config: PipelineConfig, run_id: str) -> dict:
    manifest = read_manifest(config.storage_root, run_id, object_store_for(config))
    if manifest is None:
        where = config.settings.storage.base_dir
        raise FileNotFoundError(f"no manifest for run '{run_id}' in {where}/runs/{run_id}")
    return manifest


def _hashes(manifest: dict) -> dict[tuple[str, str], str]:
    return {
        (task, name): artifact["sha256"]
        for task, entry in manifest["tasks"].items()
        for name, artifact in entry.get("outputs", {}).items()
    }


def reproduce_run(config: PipelineConfig, run_id: str) -> ReproduceReport:
    """Run again with the recorded effective config (notifications off) and compare hashes."""
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
        report = run_pipeline(replay, tasks or None)
    finally:
        replay_path.unlink(missing_ok=True)
    before = _hashes(original)
    after = _hashes(_manifest(config, report.run_id))
    comparisons = [
        OutputComparison(task, name, before.get((task, name)), after.get((task, name)))
        for task, name in sorted(set(before) | set(after))
    ]
    return ReproduceReport(run_id, report.run_id, report.success, comparisons)
