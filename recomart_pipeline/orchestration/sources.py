"""The fingerprint of the external data a task reads, recorded on its materialization.

A task such as ingestion reads files outside the pipeline (``data/interactions.csv``). It is
a root asset, so Dagster has no upstream data version that changes when such a file does;
the fingerprint of the task's declared sources (``TaskSpec.watched_sources``, hashed the way
the data-arrival sensor hashes them) is the data version of its observable source asset
(orchestration.source_assets), which is what tells "same data" from "new data", and is also
shown in the materialization's metadata (what that run read).
"""

from __future__ import annotations

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.runtime.fingerprint import source_fingerprint

SOURCE_FINGERPRINT_KEY = "recomart/source_fingerprint"


def task_source_fingerprint(config: PipelineConfig, task: str) -> str | None:
    """The fingerprint of ``task``'s external sources now; None when it declares none or one
    cannot be reached (then nothing is recorded, and the task counts as stale next time)."""
    sources = config.specs[task].watched_sources(config.task_config(task))
    if not sources:
        return None
    try:
        return source_fingerprint(sources, config.project_root)
    except (OSError, ValueError):
        return None
