"""RecoMart Pipeline: a YAML-driven recommender pipeline on Dagster.

``PipelineConfig`` and ``TaskDependencyGraph`` are pure Python; the Dagster-backed
``execute_pipeline_programmatically`` is imported on first use so that loading or
validating a config never pays for importing dagster. The other names are imported on first
use too: importing a subpackage (a task module in a worker, the CLI's process entry in
``__main__``) builds no config models it does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recomart_pipeline.config import ConfigError, PipelineConfig
    from recomart_pipeline.graph import TaskDependencyGraph
    from recomart_pipeline.orchestration.execution import execute_pipeline_programmatically

__all__ = [
    "ConfigError",
    "PipelineConfig",
    "TaskDependencyGraph",
    "execute_pipeline_programmatically",
]


def __getattr__(name: str) -> Any:
    if name in ("ConfigError", "PipelineConfig"):
        from recomart_pipeline import config

        return getattr(config, name)
    if name == "TaskDependencyGraph":
        from recomart_pipeline.graph import TaskDependencyGraph

        return TaskDependencyGraph
    if name == "execute_pipeline_programmatically":
        from recomart_pipeline.orchestration.execution import execute_pipeline_programmatically

        return execute_pipeline_programmatically
    raise AttributeError(f"module 'recomart_pipeline' has no attribute {name!r}")
